using System.Text.Json;
using System.Text.Json.Nodes;
using DevRift.Hsm.Api.Admin;
using DevRift.Hsm.Appliance;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Errors;

namespace DevRift.Hsm.Api.Cli;

/// <summary>
/// The operator API on the command line (same services, same validation, JSON output):
/// <code>
/// init
/// applications list | applications create NAME [standard|enterprise] | applications rename APP NAME
/// settings get APP | settings set APP name=value …
/// api-keys list APP | api-keys create APP test|live [LABEL] | api-keys roll APP KEY_ID [OVERLAP_SECONDS] | api-keys label APP KEY_ID [LABEL] | api-keys revoke APP KEY_ID
/// operator-tokens list | operator-tokens create LABEL | operator-tokens revoke TOKEN_ID
/// test-messages purge APP
/// audit list [AFTER] [LIMIT] | audit verify
/// hsm status | hsm rotate PURPOSE | hsm retire PURPOSE VERSION
/// </code>
/// </summary>
public static class OperatorCommands
{
    private static readonly JsonSerializerOptions s_json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull,
        WriteIndented = true,
    };

    public static async Task<int> RunAsync(IServiceProvider services, IConfiguration configuration, string[] words, TextWriter stdout, TextWriter stderr)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        ArgumentNullException.ThrowIfNull(words);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        var init = services.GetRequiredService<ApplianceInitializer>();
        try
        {
            if (words is ["init"])
            {
                var recovery = await InitAsync(init, configuration, string.IsNullOrWhiteSpace(configuration["Tls:Certificate"]) ? null : services.GetRequiredService<Tls.TlsMaterial>(), stdout);
                await AuditCommands.RecordAsync(services, words, recovery, "ok");
                return 0;
            }

            init.CheckReady();
            if (words is ["audit", ..])
            {
                return await AuditCommands.RunAsync(services, words, stdout);
            }

            var apps = services.GetRequiredService<ApplicationStore>();
            var keys = services.GetRequiredService<ApiKeys>();
            var tokens = services.GetRequiredService<OperatorTokens>();
            object result = words switch
            {
                ["applications", "list"] => (await apps.ListAsync()).Select(ApplicationResponse.From).ToList(),
                ["applications", "create", var name] => ApplicationResponse.From(await apps.CreateAsync(name, Plans.Standard)),
                ["applications", "create", var name, var plan] => ApplicationResponse.From(await apps.CreateAsync(name, plan)),
                ["applications", "rename", var app, var name] => await RenameAsync(apps, app, name),
                ["settings", "get", var app] => AdminEndpoints.SettingsJson(await apps.GetAsync(app)),
                ["settings", "set", var app, .. var pairs] when pairs.Length > 0 => await SetSettingsAsync(apps, app, ParsePairs(pairs)),
                ["api-keys", "list", var app] => (await keys.ListAsync((await apps.GetAsync(app)).Id)).Select(k => ApiKeyResponse.From(k)).ToList(),
                ["api-keys", "create", var app, var mode] => await CreateKeyAsync(keys, app, mode, null),
                ["api-keys", "create", var app, var mode, var label] => await CreateKeyAsync(keys, app, mode, label),
                ["api-keys", "roll", var app, var keyId] => ApiKeyRollResponse.From(await keys.RollAsync(app, keyId, AdminEndpoints.DefaultOverlap)),
                ["api-keys", "roll", var app, var keyId, var overlap] => ApiKeyRollResponse.From(await keys.RollAsync(app, keyId, AdminEndpoints.Overlap(overlap))),
                ["api-keys", "label", var app, var keyId] => await LabelAsync(keys, app, keyId, null),
                ["api-keys", "label", var app, var keyId, var label] => await LabelAsync(keys, app, keyId, label),
                ["api-keys", "revoke", var app, var keyId] => ApiKeyResponse.From(await keys.RevokeAsync(app, keyId)),
                ["operator-tokens", "list"] => (await tokens.ListAsync()).Select(t => OperatorTokenResponse.From(t)).ToList(),
                ["operator-tokens", "create", var label] => await CreateTokenAsync(tokens, label),
                ["operator-tokens", "revoke", var tokenId] => OperatorTokenResponse.From(await tokens.RevokeAsync(tokenId)),
                ["test-messages", "purge", var app] => new TestMessagesPurgeResponse("test_messages_purge", app,
                    await services.GetRequiredService<Appliance.Outbox.TestOutbox>().PurgeAsync(app)),
                ["client-certificates", .. var rest] => await ClientCertificateCommands.RunAsync(services, rest),
                ["event-endpoint", .. var rest] => await EventEndpointCommands.RunAsync(services, rest),
                ["hsm", .. var hsm] => await HsmCommands.RunAsync(services, hsm),
                ["fraud-guard", "show", var app] => FraudGuardResponse.From(
                    await apps.GetAsync(app), await services.GetRequiredService<Appliance.Fraud.FraudGuard>().CountsAsync(app)),
                _ => throw new MfaException(ErrorCode.InvalidRequest, $"unknown command '{string.Join(' ', words)}'. Commands: serve, init, applications list|create|rename, settings get|set, api-keys list|create|roll|label|revoke, operator-tokens list|create|revoke, test-messages purge, audit list|verify, client-certificates list|add|remove, event-endpoint get|set|remove|rotate-secret, hsm status|rotate|retire, fraud-guard show"),
            };
            await AuditCommands.RecordAsync(services, words, result, "ok");
            await stdout.WriteLineAsync(JsonSerializer.Serialize(result is Changed c ? c.Result : result, s_json));
            return 0;
        }
        catch (MfaException e)
        {
            await AuditCommands.RecordAsync(services, words, null, e.Error.Code);
            await stderr.WriteLineAsync($"devrift: {e.Error.Code}: {e.Message}");
            return 1;
        }
    }

    private static async Task<ApiKeyResponse> CreateKeyAsync(ApiKeys keys, string app, string mode, string? label)
    {
        var created = await keys.CreateAsync(app, mode, label);
        return ApiKeyResponse.From(created.Key, created.Secret);
    }

    private static async Task<OperatorTokenResponse> CreateTokenAsync(OperatorTokens tokens, string label)
    {
        var created = await tokens.CreateTokenAsync(label);
        return OperatorTokenResponse.From(created.Token, created.Secret);
    }

    /// <summary>What changed, for the audit record (<see cref="AuditCommands.RecordAsync"/>), beside the answer.</summary>
    public sealed record Changed(object Result, JsonObject Change);

    private static async Task<Changed> RenameAsync(ApplicationStore apps, string app, string name)
    {
        var before = await apps.GetAsync(app);
        var after = await apps.RenameAsync(app, name);
        return new Changed(ApplicationResponse.From(after), Audit.OperatorChanges.Application(before, after));
    }

    private static async Task<Changed> SetSettingsAsync(ApplicationStore apps, string app, JsonObject patch)
    {
        var before = AdminEndpoints.SettingsJson(await apps.GetAsync(app));
        var after = AdminEndpoints.SettingsJson(await apps.UpdateSettingsAsync(app, patch));
        return new Changed(after, Audit.OperatorChanges.Settings(before, after));
    }

    private static async Task<Changed> LabelAsync(ApiKeys keys, string app, string keyId, string? label)
    {
        var before = await keys.FindAsync(app, keyId);
        var after = ApiKeyResponse.From(await keys.LabelAsync(app, keyId, label));
        return new Changed(after, Audit.OperatorChanges.Label(before, after));
    }


    /// <summary>Runs init; returns the recovery token minted on an existing install (for the audit record), else null.</summary>
    private static async Task<OperatorTokenResponse?> InitAsync(ApplianceInitializer init, IConfiguration configuration, Tls.TlsMaterial? tls, TextWriter stdout)
    {
        var result = await init.InitializeAsync(
            createDemo: !string.Equals(configuration["Init:Demo"], "false", StringComparison.OrdinalIgnoreCase),
            newDatabase: string.Equals(configuration["Init:NewDatabase"], "true", StringComparison.OrdinalIgnoreCase),
            newOperatorToken: string.Equals(configuration["Init:OperatorToken"], "true", StringComparison.OrdinalIgnoreCase));
        await stdout.WriteLineAsync(result.KeysCreated.Count == 0
            ? "hsm: the token already has its keys"
            : $"hsm: created {string.Join(", ", result.KeysCreated)}");
        var url = (configuration["urls"] ?? Hosting.ApplianceHost.DefaultUrls).Split(';')[0].TrimEnd('/');
        if (tls is not null && url.StartsWith("http://", StringComparison.OrdinalIgnoreCase))
        {
            url = "https://" + url["http://".Length..];
        }

        if (result.RecoveryToken is { } recovery)
        {
            await stdout.WriteLineAsync($"""

                New operator token {recovery.Token.Id} ("{recovery.Token.Label}"), shown once:

                  operator token:  {recovery.Secret}

                Sign in at {DemoUrl(url)}/dashboard and revoke the tokens you no longer hold.

                """);
            return OperatorTokenResponse.From(recovery.Token);
        }

        if (result.DemoApplication is null)
        {
            await stdout.WriteLineAsync($"dashboard: {DemoUrl(url)}/dashboard (lost every operator token? init --Init:OperatorToken=true mints one)");
            return null;
        }

        var (curl, note) = tls is null ? ("curl", "") : CurlOverTls(configuration, tls, result.DemoApplication.Id);

        await stdout.WriteLineAsync($"""

            Demo application {result.DemoApplication.Id} ({result.DemoApplication.Plan} plan) created. These secrets are shown once:

              test API key:    {result.DemoTestKey}
              operator token:  {result.OperatorToken}

            Try it:

            {note}  {curl} -X POST {url}/v1/mfa -H "Authorization: Bearer {result.DemoTestKey}" -d "User=ada@example.com, Type=EMAIL"
              {curl} "{url}/v1/test/messages?user=ada@example.com" -H "Authorization: Bearer {result.DemoTestKey}"
              {curl} -X POST {url}/v1/mfa/verify -H "Authorization: Bearer {result.DemoTestKey}" -d "User=ada@example.com, Type=EMAIL, Code=THE_CODE"

            Or every method in a browser, with the test key: {DemoUrl(url)}/demo
            The operator dashboard, with the operator token: {DemoUrl(url)}/dashboard

            """);
        return null;
    }

    /// <summary>
    /// curl with what it needs under TLS: <c>--cacert</c> naming the file that holds the server certificate's issuer
    /// (Tls:ClientCa when that CA issued it, the certificate file when it is self-signed or carries its root; nothing
    /// for a publicly trusted one), and under mutual TLS <c>--cert</c>/<c>--key</c> of a client certificate, which the appliance cannot
    /// know: the note before the lines says which one and how to register it.
    /// </summary>
    private static (string Curl, string Note) CurlOverTls(IConfiguration configuration, Tls.TlsMaterial tls, string applicationId)
    {
        var curl = "curl";
        var server = tls.ServerCertificate!;
        if (tls.ClientCa.Any(ca => ca.SubjectName.RawData.AsSpan().SequenceEqual(server.IssuerName.RawData)))
        {
            curl += $" --cacert {Path.GetFullPath(configuration["Tls:ClientCa"]!)}";
        }
        else if (server.SubjectName.RawData.AsSpan().SequenceEqual(server.IssuerName.RawData)
            || tls.ServerChain.Any(c => c.SubjectName.RawData.AsSpan().SequenceEqual(c.IssuerName.RawData)))
        {
            // Self-signed, or the file carries its chain up to a root: that file is the trust anchor.
            curl += $" --cacert {Path.GetFullPath(configuration["Tls:Certificate"]!)}";
        }

        if (tls.ClientCa.Count == 0)
        {
            return (curl, "");
        }

        return (curl + " --cert CLIENT.pem --key CLIENT.key",
            "  (CLIENT.pem and CLIENT.key: a client certificate issued by Tls:ClientCa, registered on the application first:\n" +
            $"   devrift client-certificates add {applicationId} CLIENT.pem)\n");
    }

    /// <summary>The demo page's base: host <c>localhost</c>, the demo application's WebAuthn relying party.</summary>
    private static string DemoUrl(string url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var u) && (u.Host is "127.0.0.1" or "[::1]" or "0.0.0.0" or "*" or "+")
            ? $"{u.Scheme}://localhost:{u.Port}"
            : url;

    private static JsonObject ParsePairs(string[] pairs)
    {
        var patch = new JsonObject();
        foreach (var pair in pairs)
        {
            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new MfaException(ErrorCode.InvalidRequest, $"expected name=value, got '{pair}'");
            }

            var value = pair[(eq + 1)..];
            JsonNode? node;
            try
            {
                node = JsonNode.Parse(value);
            }
            catch (JsonException)
            {
                node = JsonValue.Create(value);
            }

            patch[pair[..eq]] = node;
        }

        return patch;
    }
}
