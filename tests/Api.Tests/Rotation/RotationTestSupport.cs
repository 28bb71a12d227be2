using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using DevRift.Hsm.Api.Tests.Factors;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests.Rotation;

/// <summary>A secret key object as <c>pkcs11-tool --list-objects</c> (another process, so token objects only) shows it.</summary>
public sealed record TokenKey(string Label, string Type, IReadOnlyList<string> Usage, IReadOnlyList<string> Access);

/// <summary>An EMAIL challenge sent to a fresh user, with the code the test outbox shows.</summary>
public sealed record SentCode(string User, string Code);

/// <summary>The <c>/admin/v1/hsm</c> calls and the token and database reads the rotation tests share.</summary>
public static class RotationApi
{
    public static async Task<JsonElement> RotateAsync(this ApplianceServer server, string purpose, string? token = null)
    {
        using var admin = server.AdminClient(token);
        using var response = await admin.PostAsJsonAsync("/admin/v1/hsm/rotate", new { purpose });
        var key = await response.AssertJsonAsync(HttpStatusCode.Created, "hsm_key");
        Assert.Equal(purpose, key.GetProperty("purpose").GetString());
        Assert.True(key.GetProperty("current").GetBoolean());
        Assert.Equal($"devrift.{purpose}.v{key.GetProperty("version").GetInt32()}", key.GetProperty("label").GetString());
        return key;
    }

    public static async Task<HttpResponseMessage> RetireAsync(this ApplianceServer server, string purpose, int version, string? token = null)
    {
        using var admin = server.AdminClient(token);
        return await admin.PostAsJsonAsync("/admin/v1/hsm/retire", new { purpose, version });
    }

    public static async Task<JsonElement> HsmStatusAsync(this ApplianceServer server, string? token = null)
    {
        using var admin = server.AdminClient(token);
        using var response = await admin.GetAsync("/admin/v1/hsm");
        return await response.AssertJsonAsync(HttpStatusCode.OK, "hsm");
    }

    /// <summary>The key entry of <paramref name="status"/> for one purpose and version, or null when the token lacks it.</summary>
    public static JsonElement? Key(this JsonElement status, string purpose, int version) =>
        status.GetProperty("keys").EnumerateArray()
            .Where(k => k.GetProperty("purpose").GetString() == purpose && k.GetProperty("version").GetInt32() == version)
            .Select(k => (JsonElement?)k).SingleOrDefault();

    /// <summary>The versions listed for a purpose, oldest first.</summary>
    public static int[] Versions(this JsonElement status, string purpose) =>
        status.GetProperty("keys").EnumerateArray().Where(k => k.GetProperty("purpose").GetString() == purpose)
            .Select(k => k.GetProperty("version").GetInt32()).ToArray();

    public static long Dependents(this JsonElement status, string purpose, int version, string what) =>
        status.Key(purpose, version)!.Value.GetProperty("dependents").GetProperty(what).GetInt64();

    /// <summary>The token's secret keys by label, read by <c>pkcs11-tool</c> in its own process.</summary>
    public static async Task<Dictionary<string, TokenKey>> TokenKeysAsync(this ApplianceServer server)
    {
        var psi = new ProcessStartInfo("pkcs11-tool") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in (string[])["--module", server.Hsm.ModulePath, "--token-label", server.Hsm.TokenLabel, "--login", "--pin", server.Hsm.Pin!, "--list-objects", "--type", "secrkey"])
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["SOFTHSM2_CONF"] = server.Hsm.SoftHsmConfig;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, $"pkcs11-tool failed ({p.ExitCode}): {await stderr}");
        var keys = new Dictionary<string, TokenKey>(StringComparer.Ordinal);
        foreach (var block in (await stdout).Split("Secret Key Object;", StringSplitOptions.RemoveEmptyEntries))
        {
            var lines = block.Split('\n', StringSplitOptions.TrimEntries);
            string Field(string name) => lines.FirstOrDefault(l => l.StartsWith(name + ":", StringComparison.Ordinal))?[(name.Length + 1)..].Trim() ?? "";
            var label = Field("label");
            if (label.Length > 0)
            {
                keys[label] = new TokenKey(label, lines[0].Trim(), Split(Field("Usage")), Split(Field("Access")));
            }
        }

        return keys;

        static string[] Split(string list) => list.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
    }

    /// <summary>Asserts a key generated in the HSM as init makes them: token object, sensitive, never extractable.</summary>
    public static void AssertProtected(TokenKey key)
    {
        Assert.Contains("sensitive", key.Access);
        Assert.Contains("always sensitive", key.Access);
        Assert.Contains("never extractable", key.Access);
        Assert.DoesNotContain("extractable", key.Access);
        Assert.Contains("local", key.Access); // generated on the token, never imported
    }

    /// <summary>Polls (bounded) until <paramref name="sql"/> counts <paramref name="expected"/>; fails with the last count.</summary>
    public static async Task WaitForCountAsync(this ApplianceServer server, string sql, long expected, TimeSpan? within = null)
    {
        var deadline = Stopwatch.StartNew();
        long count;
        while ((count = await server.CountAsync(sql)) != expected && deadline.Elapsed < (within ?? TimeSpan.FromSeconds(30)))
        {
            await Task.Delay(50);
        }

        Assert.True(count == expected, $"'{sql}' counted {count}, expected {expected} within the wait");
    }

    /// <summary>Sends an EMAIL code to a new user and returns the user and the code read from the test outbox.</summary>
    public static async Task<SentCode> SendEmailCodeAsync(this ApplianceServer server, string hint, string? bearer = null)
    {
        var user = FactorApi.NewUser(hint);
        await server.SendAcceptedAsync(user, "EMAIL", bearer);
        return new SentCode(user, await server.LatestCodeAsync(user, "EMAIL", bearer));
    }

    public static Task<long> ChallengeKeyVersionAsync(this ApplianceServer server, string user) =>
        server.CountAsync("SELECT code_key_version FROM challenges WHERE user_key = @user ORDER BY created_at DESC LIMIT 1", new { user });

    public static async Task<int> SealVersionOfLatestMessageAsync(this ApplianceServer server, string user)
    {
        await using var db = await server.OpenDatabaseAsync();
        var blob = await Dapper.SqlMapper.ExecuteScalarAsync<byte[]>(db,
            "SELECT sealed_body FROM outbox WHERE destination = @user ORDER BY created_at DESC LIMIT 1", new { user });
        return System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(blob.AsSpan(1, 4));
    }
}
