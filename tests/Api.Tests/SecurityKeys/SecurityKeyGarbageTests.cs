using System.Formats.Cbor;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests.SecurityKeys;

/// <summary>Malformed WebAuthn responses: each answered with a clear 4xx naming the credential, never a 5xx.</summary>
public sealed class SecurityKeyGarbageTests(FakeClockServers servers) : IClassFixture<FakeClockServers>
{
    /// <summary>A malformed assertion: how to spoil a valid one, and the answer expected.</summary>
    public sealed record Spoil(string Name, Func<JsonObject, JsonNode?> Make, HttpStatusCode Status, string Code);

    private static readonly Spoil[] s_assertions =
    [
        new("no credential", _ => null, HttpStatusCode.BadRequest, "invalid_request"),
        new("a number", _ => 42, HttpStatusCode.BadRequest, "invalid_request"),
        new("a string that is not JSON", _ => "not json", HttpStatusCode.BadRequest, "invalid_request"),
        new("an array", _ => new JsonArray(1, 2), HttpStatusCode.BadRequest, "invalid_request"),
        new("an empty object", _ => new JsonObject(), HttpStatusCode.BadRequest, "invalid_request"),
        new("no response", c => Without(c, "response"), HttpStatusCode.BadRequest, "invalid_request"),
        new("no rawId", c => Without(c, "rawId"), HttpStatusCode.BadRequest, "invalid_request"),
        new("rawId not base64url", c => With(c, "rawId", "***not base64url***"), HttpStatusCode.BadRequest, "invalid_request"),
        new("rawId a number", c => With(c, "rawId", 5), HttpStatusCode.BadRequest, "invalid_request"),
        new("response a string", c => With(c, "response", "abc"), HttpStatusCode.BadRequest, "invalid_request"),
        new("no signature", c => WithResponse(c, "signature", null), HttpStatusCode.BadRequest, "invalid_request"),
        new("no authenticatorData", c => WithResponse(c, "authenticatorData", null), HttpStatusCode.BadRequest, "invalid_request"),
        new("empty clientDataJSON", c => WithResponse(c, "clientDataJSON", ""), HttpStatusCode.BadRequest, "invalid_request"),
        new("clientDataJSON not JSON", c => WithResponse(c, "clientDataJSON", B64("not json")), HttpStatusCode.BadRequest, "invalid_request"),
        new("clientDataJSON an array", c => WithResponse(c, "clientDataJSON", B64("[1,2]")), HttpStatusCode.BadRequest, "invalid_request"),
        new("clientDataJSON challenge a number", c => WithResponse(c, "clientDataJSON", B64("{\"type\":\"webauthn.get\",\"challenge\":7}")), HttpStatusCode.BadRequest, "invalid_request"),
        new("clientDataJSON standard base64 with padding", c => WithResponse(c, "clientDataJSON", Convert.ToBase64String(Encoding.UTF8.GetBytes("{\"a\":\"??>>\"}"))), HttpStatusCode.BadRequest, "invalid_request"),
        new("type not public-key", c => With(c, "type", "password"), HttpStatusCode.BadRequest, "invalid_request"),
        new("authenticatorData truncated", c => WithResponse(c, "authenticatorData", Truncated(c, "authenticatorData", 10)), HttpStatusCode.Unauthorized, "invalid_code"),
        new("authenticatorData with trailing bytes", c => WithResponse(c, "authenticatorData", Extended(c, "authenticatorData", 7)), HttpStatusCode.Unauthorized, "invalid_code"),
        new("signature random bytes", c => WithResponse(c, "signature", Base64UrlText.Encode(RandomNumberGenerator.GetBytes(8))), HttpStatusCode.Unauthorized, "invalid_code"),
        new("signature truncated DER", c => WithResponse(c, "signature", Truncated(c, "signature", 20)), HttpStatusCode.Unauthorized, "invalid_code"),
        new("userHandle empty", c => WithResponse(c, "userHandle", ""), HttpStatusCode.Unauthorized, "invalid_code"),
    ];

    private static readonly Spoil[] s_registrations =
    [
        new("no credential", _ => null, HttpStatusCode.BadRequest, "invalid_request"),
        new("an empty object", _ => new JsonObject(), HttpStatusCode.BadRequest, "invalid_request"),
        new("no attestationObject", c => WithResponse(c, "attestationObject", null), HttpStatusCode.BadRequest, "invalid_request"),
        new("attestationObject not base64url", c => WithResponse(c, "attestationObject", "%%%"), HttpStatusCode.BadRequest, "invalid_request"),
        new("attestationObject truncated CBOR", c => WithResponse(c, "attestationObject", Truncated(c, "attestationObject", 40)), HttpStatusCode.BadRequest, "invalid_request"),
        new("attestationObject a CBOR integer", c => WithResponse(c, "attestationObject", Base64UrlText.Encode([0x01])), HttpStatusCode.BadRequest, "invalid_request"),
        new("attestationObject random bytes", c => WithResponse(c, "attestationObject", Base64UrlText.Encode(RandomNumberGenerator.GetBytes(64))), HttpStatusCode.BadRequest, "invalid_request"),
        new("attestationObject without authData", c => WithResponse(c, "attestationObject", AttestationObject("none", null)), HttpStatusCode.BadRequest, "invalid_request"),
        new("authData truncated inside the credential", c => WithResponse(c, "attestationObject", AttestationObject("none", AuthData(c)[..50])), HttpStatusCode.BadRequest, "invalid_request"),
        new("COSE key replaced by garbage", c => WithResponse(c, "attestationObject", AttestationObject("none", [.. AuthData(c)[..^77], .. RandomNumberGenerator.GetBytes(77)])), HttpStatusCode.BadRequest, "invalid_request"),
        new("format packed without a statement", c => WithResponse(c, "attestationObject", AttestationObject("packed", AuthData(c))), HttpStatusCode.BadRequest, "invalid_request"),
        new("format unknown", c => WithResponse(c, "attestationObject", AttestationObject("made-up", AuthData(c))), HttpStatusCode.BadRequest, "invalid_request"),
        new("transports a number", c => WithResponse(c, "transports", 5), HttpStatusCode.BadRequest, "invalid_request"),
        new("rawId not the credential in authData", c => With(With(c, "rawId", Base64UrlText.Encode(RandomNumberGenerator.GetBytes(32))), "id", null), HttpStatusCode.BadRequest, "invalid_request"),
    ];

    public static TheoryData<string> AssertionNames => [.. s_assertions.Select(s => s.Name)];

    public static TheoryData<string> RegistrationNames => [.. s_registrations.Select(s => s.Name)];

    [Theory]
    [MemberData(nameof(AssertionNames))]
    public async Task A_malformed_assertion_is_a_4xx(string name)
    {
        // Given a user with a key (in an application that will not lock anyone out during this), and fresh options
        var spoil = s_assertions.Single(s => s.Name == name);
        var server = await servers.GetAsync(Db.Sqlite);
        var bearer = await BearerAsync(server);
        var user = SecurityKeyApi.NewUser("garbage");
        using var key = (await server.RegisterKeyAsync(user, bearer: bearer)).Authenticator;
        var valid = key.Assert(await server.AssertionOptionsAsync(user, bearer));

        // When the spoilt assertion is posted, then the exact 4xx naming the credential
        using (var response = await server.VerifyKeyAsync(user, spoil.Make((JsonObject)valid.DeepClone()), bearer))
        {
            await response.AssertProblemAsync(spoil.Status, spoil.Code, "credential");
        }

        // and the key still verifies afterwards
        await server.VerifiedWithKeyAsync(user, key, bearer);
    }

    [Theory]
    [MemberData(nameof(RegistrationNames))]
    public async Task A_malformed_attestation_is_a_4xx(string name)
    {
        // Given registration options
        var spoil = s_registrations.Single(s => s.Name == name);
        var server = await servers.GetAsync(Db.Sqlite);
        var user = SecurityKeyApi.NewUser("garbage-reg");
        using var key = server.NewAuthenticator();
        var valid = key.Register(await server.RegistrationOptionsAsync(user));

        // When the spoilt attestation is posted, then 400 invalid_request naming the credential, and nothing is stored
        using (var response = await server.PostRegistrationAsync(user, spoil.Make((JsonObject)valid.DeepClone())))
        {
            await response.AssertProblemAsync(spoil.Status, spoil.Code, "credential");
        }

        Assert.Empty(await server.ListKeysAsync(user));
        await server.RegisterKeyAsync(user, key);
    }

    [Theory]
    [InlineData("/v1/mfa/verify", "User={0}, Type=KEY, Credential={{broken")]
    [InlineData("/v1/mfa/verify", "User={0}, Type=KEY, Credential=")]
    [InlineData("/v1/mfa/keys/registration", "User={0}, Credential=[[[")]
    [InlineData("/v1/mfa/keys/registration", "User={0}")]
    public async Task A_form_body_with_a_broken_credential_is_400(string path, string form)
    {
        var server = await servers.GetAsync(Db.Sqlite);
        var user = SecurityKeyApi.NewUser("garbage-form");
        using var key = (await server.RegisterKeyAsync(user)).Authenticator;
        await server.AssertionOptionsAsync(user);
        await server.RegistrationOptionsAsync(user);
        using var response = await server.PostCurlAsync(path, string.Format(System.Globalization.CultureInfo.InvariantCulture, form, user));
        await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", "credential");
    }

    [Fact]
    public async Task A_credential_without_user_or_for_an_invalid_user_is_400()
    {
        var server = await servers.GetAsync(Db.Sqlite);
        foreach (var path in (string[])["/v1/mfa/keys/registration/options", "/v1/mfa/keys/assertion/options"])
        {
            using var missing = await server.PostJsonAsync(path, new { });
            await missing.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_user", "user");
            using var invalid = await server.PostJsonAsync(path, new { user = "not-an-address@" });
            var problem = await invalid.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_email");
            Assert.Equal("user", problem.GetProperty("param").GetString());
        }

        using var list = await server.Client.GetAsync("/v1/mfa/keys");
        await list.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_user", "user");
    }

    private static async Task<string> BearerAsync(ApplianceServer server) =>
        s_bearers.TryGetValue(server, out var b) ? b : s_bearers[server] = await server.NewKeyApplicationAsync("Garbage", new { lockout_threshold = 100 });

    private static readonly Dictionary<ApplianceServer, string> s_bearers = [];

    private static string B64(string text) => Base64UrlText.Encode(Encoding.UTF8.GetBytes(text));

    private static JsonObject Without(JsonObject c, string name)
    {
        c.Remove(name);
        return c;
    }

    private static JsonObject With(JsonObject c, string name, JsonNode? value)
    {
        c[name] = value;
        return c;
    }

    private static JsonObject WithResponse(JsonObject c, string name, JsonNode? value)
    {
        var response = (JsonObject)c["response"]!;
        if (value is null)
        {
            response.Remove(name);
        }
        else
        {
            response[name] = value;
        }

        return c;
    }

    private static byte[] Field(JsonObject c, string name) => Base64UrlText.Decode(c["response"]![name]!.GetValue<string>());

    private static string Truncated(JsonObject c, string name, int length) => Base64UrlText.Encode(Field(c, name)[..length]);

    private static string Extended(JsonObject c, string name, int extra) => Base64UrlText.Encode([.. Field(c, name), .. new byte[extra]]);

    /// <summary>The authData inside a valid attestation object.</summary>
    private static byte[] AuthData(JsonObject c)
    {
        var reader = new CborReader(Field(c, "attestationObject"));
        reader.ReadStartMap();
        while (reader.PeekState() != CborReaderState.EndMap)
        {
            if (reader.ReadTextString() == "authData")
            {
                return reader.ReadByteString();
            }

            reader.SkipValue();
        }

        throw new InvalidOperationException("no authData");
    }

    private static string AttestationObject(string format, byte[]? authData)
    {
        var writer = new CborWriter(CborConformanceMode.Lax);
        writer.WriteStartMap(authData is null ? 2 : 3);
        writer.WriteTextString("fmt");
        writer.WriteTextString(format);
        writer.WriteTextString("attStmt");
        writer.WriteStartMap(0);
        writer.WriteEndMap();
        if (authData is not null)
        {
            writer.WriteTextString("authData");
            writer.WriteByteString(authData);
        }

        writer.WriteEndMap();
        return Base64UrlText.Encode(writer.Encode());
    }
}
