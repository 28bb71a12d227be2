using System.Buffers.Binary;
using System.Formats.Cbor;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace DevRift.Hsm.Api.Tests.SecurityKeys;

/// <summary>Authenticator-data flags (WebAuthn §6.1).</summary>
[Flags]
public enum AuthenticatorFlags : byte
{
    None = 0,
    UserPresent = 0x01,
    UserVerified = 0x04,
    BackupEligible = 0x08,
    BackedUp = 0x10,
    AttestedCredentialData = 0x40,
    ExtensionData = 0x80,
}

/// <summary>What a test wants the authenticator (or the browser around it) to get wrong; null fields are done right.</summary>
public sealed record Forgery
{
    /// <summary>The origin written into clientDataJSON.</summary>
    public string? Origin { get; init; }

    /// <summary>The relying-party id whose SHA-256 starts the authenticator data.</summary>
    public string? RpId { get; init; }

    /// <summary>The flags byte (AT is still added on registration unless <see cref="ExactFlags"/>).</summary>
    public AuthenticatorFlags? Flags { get; init; }

    /// <summary>Use <see cref="Flags"/> exactly as given.</summary>
    public bool ExactFlags { get; init; }

    /// <summary>The signature counter to report instead of the next one.</summary>
    public uint? Counter { get; init; }

    /// <summary>Sign with this key instead of the credential's own.</summary>
    public ECDsa? SigningKey { get; init; }

    /// <summary>The challenge (base64url) written into clientDataJSON instead of the one in the options.</summary>
    public string? Challenge { get; init; }

    /// <summary>The clientDataJSON type instead of webauthn.create / webauthn.get.</summary>
    public string? Type { get; init; }

    /// <summary>The userHandle to return in an assertion (base64url), or "" to leave it out.</summary>
    public string? UserHandle { get; init; }
}

/// <summary>
/// A software security key written from the WebAuthn Level 2 specification (§5.8.1 client data, §6.1 authenticator
/// data, §6.5 attestation object, §8.7 'none' attestation, §6.3.3 assertion signature) and RFC 8152 COSE keys, with
/// the framework's ECDsa (P-256, ES256) and System.Formats.Cbor. It shares no code with the appliance or with Fido2:
/// its responses are built byte by byte so a test can forge any one field.
/// </summary>
public sealed class SoftwareAuthenticator : IDisposable
{
    /// <summary>COSE key-map labels and values (RFC 8152 §7, §13.1).</summary>
    private const int CoseKty = 1, CoseAlg = 3, CoseCrv = -1, CoseX = -2, CoseY = -3, KtyEc2 = 2, AlgEs256 = -7, CrvP256 = 1;

    private readonly ECDsa _key = ECDsa.Create(ECCurve.NamedCurves.nistP256);

    public SoftwareAuthenticator(string origin)
    {
        Origin = origin;
        CredentialId = RandomNumberGenerator.GetBytes(32);
    }

    /// <summary>The origin the "browser" reports, e.g. http://localhost:5000.</summary>
    public string Origin { get; }

    public byte[] CredentialId { get; }

    public string CredentialIdText => Base64UrlText.Encode(CredentialId);

    /// <summary>The counter reported by the last response (a new one reports this plus one).</summary>
    public uint Counter { get; private set; }

    /// <summary>The user.id of the creation options this key was registered with.</summary>
    public byte[]? UserHandle { get; private set; }

    /// <summary>Flags a well-behaved key sets: user present and verified (a key with a PIN or fingerprint).</summary>
    public AuthenticatorFlags DefaultFlags { get; init; } = AuthenticatorFlags.UserPresent | AuthenticatorFlags.UserVerified;

    /// <summary>
    /// navigator.credentials.create(): from the creation options JSON (as the appliance returned them), the
    /// PublicKeyCredential serialised as standard JSON with base64url fields.
    /// </summary>
    public JsonObject Register(JsonElement creationOptions, Forgery? forgery = null)
    {
        forgery ??= new Forgery();
        var challenge = forgery.Challenge ?? creationOptions.GetProperty("challenge").GetString()!;
        var rpId = forgery.RpId ?? creationOptions.GetProperty("rp").GetProperty("id").GetString()!;
        UserHandle = Base64UrlText.Decode(creationOptions.GetProperty("user").GetProperty("id").GetString()!);
        var clientData = ClientData(forgery.Type ?? "webauthn.create", challenge, forgery.Origin ?? Origin);

        var flags = forgery.Flags ?? DefaultFlags;
        if (!forgery.ExactFlags)
        {
            flags |= AuthenticatorFlags.AttestedCredentialData;
        }

        Counter = forgery.Counter ?? 0;
        var authData = AuthenticatorData(rpId, flags, Counter, AttestedCredentialData());
        return new JsonObject
        {
            ["id"] = CredentialIdText,
            ["rawId"] = CredentialIdText,
            ["type"] = "public-key",
            ["response"] = new JsonObject
            {
                ["clientDataJSON"] = Base64UrlText.Encode(clientData),
                ["attestationObject"] = Base64UrlText.Encode(NoneAttestationObject(authData)),
                ["transports"] = new JsonArray("usb"),
            },
            ["authenticatorAttachment"] = "cross-platform",
            ["clientExtensionResults"] = new JsonObject(),
        };
    }

    /// <summary>navigator.credentials.get(): from the request options JSON, the assertion as standard JSON.</summary>
    public JsonObject Assert(JsonElement requestOptions, Forgery? forgery = null)
    {
        forgery ??= new Forgery();
        var challenge = forgery.Challenge ?? requestOptions.GetProperty("challenge").GetString()!;
        var rpId = forgery.RpId ?? requestOptions.GetProperty("rpId").GetString()!;
        var clientData = ClientData(forgery.Type ?? "webauthn.get", challenge, forgery.Origin ?? Origin);
        var counter = forgery.Counter ?? Counter + 1;
        Counter = counter;
        var authData = AuthenticatorData(rpId, forgery.Flags ?? DefaultFlags, counter, []);

        // §6.3.3 step 11: the signature is over authenticatorData ‖ SHA-256(clientDataJSON), ASN.1 DER for ES256.
        var signed = authData.Concat(SHA256.HashData(clientData)).ToArray();
        var signature = (forgery.SigningKey ?? _key).SignData(signed, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence);
        var response = new JsonObject
        {
            ["clientDataJSON"] = Base64UrlText.Encode(clientData),
            ["authenticatorData"] = Base64UrlText.Encode(authData),
            ["signature"] = Base64UrlText.Encode(signature),
        };
        var userHandle = forgery.UserHandle ?? (UserHandle is null ? "" : Base64UrlText.Encode(UserHandle));
        if (userHandle.Length > 0)
        {
            response["userHandle"] = userHandle;
        }

        return new JsonObject
        {
            ["id"] = CredentialIdText,
            ["rawId"] = CredentialIdText,
            ["type"] = "public-key",
            ["response"] = response,
            ["authenticatorAttachment"] = "cross-platform",
            ["clientExtensionResults"] = new JsonObject(),
        };
    }

    /// <summary>The key itself, to sign a forgery for another credential.</summary>
    public ECDsa SigningKey => _key;

    public void Dispose() => _key.Dispose();

    /// <summary>§5.8.1 CollectedClientData, serialised as a browser does (type, challenge, origin, crossOrigin).</summary>
    private static byte[] ClientData(string type, string challenge, string origin) =>
        Encoding.UTF8.GetBytes(new JsonObject
        {
            ["type"] = type,
            ["challenge"] = challenge,
            ["origin"] = origin,
            ["crossOrigin"] = false,
        }.ToJsonString());

    /// <summary>§6.1: rpIdHash (32) ‖ flags (1) ‖ signCount (4, big-endian) ‖ attestedCredentialData.</summary>
    private static byte[] AuthenticatorData(string rpId, AuthenticatorFlags flags, uint counter, byte[] attestedCredentialData)
    {
        var data = new byte[32 + 1 + 4 + attestedCredentialData.Length];
        SHA256.HashData(Encoding.UTF8.GetBytes(rpId)).CopyTo(data, 0);
        data[32] = (byte)flags;
        BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(33, 4), counter);
        attestedCredentialData.CopyTo(data, 37);
        return data;
    }

    /// <summary>§6.5.1: aaguid (16, zero for 'none') ‖ credentialIdLength (2, big-endian) ‖ credentialId ‖ COSE key.</summary>
    private byte[] AttestedCredentialData()
    {
        var cose = CosePublicKey();
        var data = new byte[16 + 2 + CredentialId.Length + cose.Length];
        BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(16, 2), (ushort)CredentialId.Length);
        CredentialId.CopyTo(data, 18);
        cose.CopyTo(data, 18 + CredentialId.Length);
        return data;
    }

    /// <summary>RFC 8152 §13.1.1 EC2 key, in CTAP2 canonical order (1, 3, -1, -2, -3).</summary>
    private byte[] CosePublicKey()
    {
        var point = _key.ExportParameters(includePrivateParameters: false).Q;
        var writer = new CborWriter(CborConformanceMode.Ctap2Canonical);
        writer.WriteStartMap(5);
        writer.WriteInt32(CoseKty);
        writer.WriteInt32(KtyEc2);
        writer.WriteInt32(CoseAlg);
        writer.WriteInt32(AlgEs256);
        writer.WriteInt32(CoseCrv);
        writer.WriteInt32(CrvP256);
        writer.WriteInt32(CoseX);
        writer.WriteByteString(point.X!);
        writer.WriteInt32(CoseY);
        writer.WriteByteString(point.Y!);
        writer.WriteEndMap();
        return writer.Encode();
    }

    /// <summary>§6.5.4 / §8.7: {"fmt": "none", "attStmt": {}, "authData": bytes}.</summary>
    private static byte[] NoneAttestationObject(byte[] authData)
    {
        var writer = new CborWriter(CborConformanceMode.Ctap2Canonical);
        writer.WriteStartMap(3);
        writer.WriteTextString("fmt");
        writer.WriteTextString("none");
        writer.WriteTextString("attStmt");
        writer.WriteStartMap(0);
        writer.WriteEndMap();
        writer.WriteTextString("authData");
        writer.WriteByteString(authData);
        writer.WriteEndMap();
        return writer.Encode();
    }
}

/// <summary>RFC 4648 §5 base64url without padding, as WebAuthn's JSON uses it.</summary>
public static class Base64UrlText
{
    public static string Encode(byte[] bytes) =>
        Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public static byte[] Decode(string text)
    {
        var s = text.Replace('-', '+').Replace('_', '/');
        return Convert.FromBase64String(s.PadRight(s.Length + ((4 - (s.Length % 4)) % 4), '='));
    }
}
