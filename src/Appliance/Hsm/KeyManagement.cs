using System.Globalization;
using DevRift.Hsm.Appliance.Errors;
using DevRift.Hsm.Crypto;
using Microsoft.Extensions.Logging;

namespace DevRift.Hsm.Appliance.Hsm;

/// <summary>One key object on the token and the stored data that still needs it.</summary>
public sealed record HsmKeyStatus(KeyPurpose Purpose, int Version, string Label, bool Current, IReadOnlyDictionary<string, long> Dependents)
{
    public string PurposeName => KeyLabels.Name(Purpose);

    public long DependentCount => Dependents.Values.Sum();
}

/// <summary>The token and every <c>devrift.*</c> key on it.</summary>
public sealed record HsmStatus(HsmTokenDescription Token, IReadOnlyList<HsmKeyStatus> Keys);

/// <summary>
/// Key rotation for operators. Rotating creates version N+1 of one purpose's key inside the HSM; new data uses it at
/// once on this node, on other nodes after their next key refresh (<see cref="HsmOptions.KeyRefreshInterval"/>) or as
/// soon as they meet data made under it. Data made under older versions keeps verifying because every row records its
/// version. TOTP seeds are moved to the newest KEK in the background (<see cref="Factors.SeedRewrapService"/>). An
/// old version can be retired (destroyed on the token) once no stored data depends on it.
/// </summary>
public sealed partial class KeyManagement(HsmConnection hsm, IEnumerable<IKeyDependents> dependents, ILogger<KeyManagement> logger)
{
    private readonly IReadOnlyList<IKeyDependents> _dependents = dependents.ToList();

    public async Task<HsmStatus> StatusAsync(CancellationToken ct = default)
    {
        var token = hsm.DescribeToken();
        hsm.ReloadKeys(); // an operator asking wants the token's truth, including other nodes' rotations
        var versions = hsm.KeyVersions();
        var keys = new List<HsmKeyStatus>();
        foreach (var purpose in KeyLabels.All)
        {
            var counts = await CountAsync(purpose, ct);
            var list = versions[purpose];
            keys.AddRange(list.Select(v => Status(purpose, v, v == list[^1], counts)));
        }

        return new HsmStatus(token, keys);
    }

    /// <summary>Creates the next version of <paramref name="purposeName"/>'s key and returns its status.</summary>
    public async Task<HsmKeyStatus> RotateAsync(string? purposeName, CancellationToken ct = default)
    {
        var purpose = ParsePurpose(purposeName);
        var label = hsm.RotateKey(purpose);
        var version = KeyLabels.TryParseLabel(label, out _, out var v) ? v : throw new HsmDataException($"unexpected key label {label}");
        LogRotated(logger, label);
        return Status(purpose, version, true, await CountAsync(purpose, ct));
    }

    /// <summary>
    /// Destroys an old version of a key on the token, refusing (409 <c>key_in_use</c>) while it is the current version,
    /// while any stored data depends on it, or when no registered source can tell whether data depends on it.
    /// </summary>
    public async Task<HsmKeyStatus> RetireAsync(string? purposeName, int? version, CancellationToken ct = default)
    {
        var purpose = ParsePurpose(purposeName);
        if (version is not > 0)
        {
            throw new MfaException(ErrorCode.InvalidRequest, "'version' must be a positive integer", "version");
        }

        hsm.ReloadKeys();
        var versions = hsm.KeyVersions()[purpose];
        var label = KeyLabels.Label(purpose, version.Value);
        if (!versions.Contains(version.Value))
        {
            throw new MfaException(ErrorCode.NotFound, $"the token has no key {label}", "version");
        }

        if (version.Value == versions[^1])
        {
            throw new MfaException(ErrorCode.KeyInUse, $"{label} is the current {KeyLabels.Name(purpose)} key; rotate first", "version");
        }

        if (!_dependents.Any(d => d.Purpose == purpose))
        {
            throw new MfaException(ErrorCode.KeyInUse, $"nothing can count the data that depends on {KeyLabels.Name(purpose)} keys, so {label} is kept", "version");
        }

        var counts = await CountAsync(purpose, ct);
        var status = Status(purpose, version.Value, false, counts);
        if (status.DependentCount > 0)
        {
            var what = string.Join(", ", status.Dependents.Where(d => d.Value > 0).Select(d => string.Create(CultureInfo.InvariantCulture, $"{d.Value} {d.Key}")));
            throw new MfaException(ErrorCode.KeyInUse, $"{label} is still needed by {what}", "version");
        }

        try
        {
            if (!hsm.RetireKey(purpose, version.Value))
            {
                throw new MfaException(ErrorCode.NotFound, $"the token has no key {label}", "version");
            }
        }
        catch (InvalidOperationException)
        {
            // Became current meanwhile (it cannot; but the token is the judge).
            throw new MfaException(ErrorCode.KeyInUse, $"{label} is the current {KeyLabels.Name(purpose)} key; rotate first", "version");
        }

        LogRetired(logger, label);
        return status;
    }

    public static KeyPurpose ParsePurpose(string? name) =>
        KeyLabels.TryParse(name, out var purpose)
            ? purpose
            : throw new MfaException(ErrorCode.InvalidRequest,
                $"'purpose' must be one of {string.Join(", ", KeyLabels.All.Select(KeyLabels.Name))}", "purpose");

    private async Task<Dictionary<string, Dictionary<int, long>>> CountAsync(KeyPurpose purpose, CancellationToken ct)
    {
        var result = new Dictionary<string, Dictionary<int, long>>(StringComparer.Ordinal);
        foreach (var source in _dependents.Where(d => d.Purpose == purpose))
        {
            var byVersion = result.TryGetValue(source.Name, out var existing) ? existing : result[source.Name] = [];
            foreach (var (version, count) in await source.CountByVersionAsync(ct))
            {
                byVersion[version] = byVersion.GetValueOrDefault(version) + count;
            }
        }

        return result;
    }

    private static HsmKeyStatus Status(KeyPurpose purpose, int version, bool current, Dictionary<string, Dictionary<int, long>> counts) =>
        new(purpose, version, KeyLabels.Label(purpose, version), current,
            counts.ToDictionary(c => c.Key, c => c.Value.GetValueOrDefault(version), StringComparer.Ordinal));

    [LoggerMessage(EventId = 1101, Level = LogLevel.Information, Message = "HSM key {Label} created by rotation; new data uses it from now on")]
    private static partial void LogRotated(ILogger logger, string label);

    [LoggerMessage(EventId = 1102, Level = LogLevel.Information, Message = "HSM key {Label} retired: destroyed on the token")]
    private static partial void LogRetired(ILogger logger, string label);
}
