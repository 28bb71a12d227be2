namespace DevRift.Hsm.Api.OpenApi;

/// <summary>What the OpenAPI document says about one operation beyond what the endpoint's signature shows.</summary>
/// <param name="Body">The component name of the request body schema, if the operation takes one.</param>
/// <param name="Errors">The problem codes the operation can answer (the common ones of its group are added).</param>
/// <param name="Query">Query parameters.</param>
/// <param name="Example">An example JSON body (the form encoding gets the same fields).</param>
/// <param name="Forms">False for JSON-only bodies (the operator API).</param>
/// <param name="Idempotent">True when the operation takes an <c>Idempotency-Key</c> header.</param>
/// <param name="Success">The component schema of a success body the endpoint's signature does not show.</param>
/// <param name="OperationId">The operation id, for endpoints that do not name themselves.</param>
public sealed record OperationContract(
    string? Body, string[] Errors, QueryParameter[]? Query = null, string? Example = null, bool Forms = true, bool Idempotent = false, string? Success = null,
    string? OperationId = null);

/// <summary>A query parameter of an operation.</summary>
public sealed record QueryParameter(string Name, string Description, bool Required, bool Integer = false, string? Example = null);

/// <summary>
/// The request bodies, query parameters and problem codes of every operation, keyed by method and route. Kept here so
/// that the endpoint files stay as they are; the client tests check the document against the appliance's answers.
/// </summary>
public static class OperationContracts
{
    private const string UserCodes = "invalid_user invalid_email invalid_phone_number";
    private const string IdentityCodes = "invalid_user_id identity_conflict";
    private static readonly QueryParameter s_user = new("user", "The end user: an email address, an E.164 phone number, or email:phone.", true, Example: "ada@example.com");
    private static readonly QueryParameter s_userId = new("user_id", "Optional: the integrator's own name for the end user; it names the identity whose factors are read.", false, Example: "cust-42");

    public static readonly IReadOnlyDictionary<string, OperationContract> ByRoute = new Dictionary<string, OperationContract>(StringComparer.Ordinal)
    {
        ["POST /v1/mfa"] = new("SendCodeRequest", Codes(UserCodes, IdentityCodes, "invalid_type method_disabled plan_required country_not_allowed destination_blocked idempotency_key_reused rate_limited channel_not_configured"),
            Example: """{"user":"ada@example.com","type":"EMAIL","locale":"en","transaction":{"amount":"12.34","currency":"EUR","payee":"ACME Ltd","reference":"INV-1"}}""", Idempotent: true),
        ["GET /v1/mfa/{id}"] = new(null, Codes("not_found")),
        ["POST /v1/mfa/verify"] = new("VerifyRequest", Codes(UserCodes, IdentityCodes, "invalid_type invalid_code_format invalid_code code_expired no_pending_challenge not_enrolled transaction_mismatch method_disabled plan_required too_many_attempts"),
            Example: """{"user":"ada@example.com","type":"EMAIL","code":"123456"}"""),
        ["GET /v1/test/messages"] = new(null, Codes(UserCodes, "live_mode_forbidden"), [s_user]),
        ["POST /v1/mfa/app"] = new("UserRequest", Codes(UserCodes, IdentityCodes, "method_disabled"), Example: """{"user":"ada@example.com"}"""),
        ["DELETE /v1/mfa/app"] = new(null, Codes(UserCodes, IdentityCodes), [s_user, s_userId]),
        ["POST /v1/mfa/backup"] = new("BackupCodesRequest", Codes(UserCodes, IdentityCodes, "invalid_type method_disabled plan_required country_not_allowed destination_blocked rate_limited channel_not_configured"),
            Example: """{"user":"ada@example.com","type":"EMAIL"}"""),
        ["GET /v1/mfa/factors"] = new(null, Codes(UserCodes, IdentityCodes), [s_user, s_userId]),
        ["POST /v1/mfa/keys/registration/options"] = new("UserRequest", Codes(UserCodes, IdentityCodes, "method_disabled"), Example: """{"user":"ada@example.com"}""", Success: "WebAuthnOptions"),
        ["POST /v1/mfa/keys/registration"] = new("SecurityKeyRegistrationRequest", Codes(UserCodes, IdentityCodes, "method_disabled no_pending_challenge code_expired"),
            Example: """{"user":"ada@example.com","credential":{"id":"…","rawId":"…","type":"public-key","response":{"clientDataJSON":"…","attestationObject":"…"}}}"""),
        ["POST /v1/mfa/keys/assertion/options"] = new("AssertionOptionsRequest", Codes(UserCodes, IdentityCodes, "method_disabled not_enrolled"),
            Example: """{"user":"ada@example.com","transaction":{"amount":"12.34","currency":"EUR","payee":"ACME Ltd"}}""", Success: "WebAuthnOptions"),
        ["GET /v1/mfa/keys"] = new(null, Codes(UserCodes, IdentityCodes), [s_user, s_userId]),
        ["DELETE /v1/mfa/keys/{id}"] = new(null, Codes("not_found")),

        ["GET /admin/v1/applications"] = new(null, [], OperationId: "ListApplications"),
        ["POST /admin/v1/applications"] = new("CreateApplicationRequest", [], Example: """{"name":"Billing","plan":"standard"}""", Forms: false, OperationId: "CreateApplication"),
        ["GET /admin/v1/applications/{id}"] = new(null, ["not_found"], OperationId: "GetApplication"),
        ["PATCH /admin/v1/applications/{id}"] = new("UpdateApplicationRequest", ["not_found"], Example: """{"name":"Billing EU"}""", Forms: false, OperationId: "UpdateApplication"),
        ["GET /admin/v1/applications/{id}/settings"] = new(null, ["not_found"], Success: "Settings", OperationId: "GetSettings"),
        ["PATCH /admin/v1/applications/{id}/settings"] = new("SettingsPatch", ["not_found"], Example: """{"code_length":8,"enabled_methods":["EMAIL","APP"]}""", Forms: false, Success: "Settings", OperationId: "UpdateSettings"),
        ["GET /admin/v1/applications/{id}/api-keys"] = new(null, ["not_found"], OperationId: "ListApiKeys"),
        ["POST /admin/v1/applications/{id}/api-keys"] = new("CreateApiKeyRequest", ["not_found"], Example: """{"mode":"live"}""", Forms: false, OperationId: "CreateApiKey"),
        ["DELETE /admin/v1/applications/{id}/api-keys/{keyId}"] = new(null, ["not_found"], OperationId: "RevokeApiKey"),
        ["PATCH /admin/v1/applications/{id}/api-keys/{keyId}"] = new("LabelApiKeyRequest", ["not_found"], Example: """{"label":"checkout service"}""", Forms: false, OperationId: "LabelApiKey"),
        ["POST /admin/v1/applications/{id}/api-keys/{keyId}/roll"] = new("RollApiKeyRequest", ["not_found"], Example: """{"overlap_seconds":3600}""", Forms: false,
            OperationId: "RollApiKey"),
        ["GET /admin/v1/applications/{id}/fraud-guard"] = new(null, ["not_found"], OperationId: "GetFraudGuard"),
        ["DELETE /admin/v1/applications/{id}/test-messages"] = new(null, ["not_found"], OperationId: "PurgeTestMessages"),
        ["GET /admin/v1/operator-tokens"] = new(null, [], OperationId: "ListOperatorTokens"),
        ["POST /admin/v1/operator-tokens"] = new("CreateOperatorTokenRequest", [], Example: """{"label":"on-call laptop"}""", Forms: false, OperationId: "CreateOperatorToken"),
        ["DELETE /admin/v1/operator-tokens/{tokenId}"] = new(null, ["not_found"], OperationId: "RevokeOperatorToken"),
        ["GET /admin/v1/applications/{id}/client-certificates"] = new(null, ["not_found"], OperationId: "ListClientCertificates"),
        ["POST /admin/v1/applications/{id}/client-certificates"] = new("RegisterClientCertificateRequest", ["not_found"],
            Example: """{"thumbprint":"3A:5F:…"}""", Forms: false, OperationId: "RegisterClientCertificate"),
        ["DELETE /admin/v1/applications/{id}/client-certificates/{certificateId}"] = new(null, ["not_found"], OperationId: "RemoveClientCertificate"),
        ["PUT /admin/v1/applications/{id}/event-endpoint"] = new("EventEndpointRequest", ["not_found"],
            Example: """{"url":"https://hooks.example.com/devrift","events":["verification.approved","verification.failed"]}""", Forms: false,
            OperationId: "SetEventEndpoint"),
        ["GET /admin/v1/applications/{id}/event-endpoint"] = new(null, ["not_found"], OperationId: "GetEventEndpoint"),
        ["DELETE /admin/v1/applications/{id}/event-endpoint"] = new(null, ["not_found"], OperationId: "RemoveEventEndpoint"),
        ["POST /admin/v1/applications/{id}/event-endpoint/rotate-secret"] = new("RotateEventSecretRequest", ["not_found"], Example: "{}", Forms: false,
            OperationId: "RotateEventEndpointSecret"),
        ["GET /admin/v1/audit"] = new(null, ["invalid_request"], [
            new("after", "Records with seq greater than this (default 0).", false, Integer: true, Example: "0"),
            new("limit", "At most this many records (1 to 1000, default 100).", false, Integer: true, Example: "100"),
            new("event", "Only records of this event, e.g. api_key.roll.", false, Example: "settings.update"),
            new("application_id", "Only records of this application.", false, Example: "app_3f9c2a"),
            new("subject", "Only records about this end user (written as the API takes a user).", false, Example: "ada@example.com"),
            new("outcome", "Only records with this outcome: ok, valid, or a problem code.", false, Example: "ok"),
            new("from", "Only records at or after this ISO 8601 time.", false, Example: "2026-06-01T00:00:00Z"),
            new("to", "Only records before this ISO 8601 time.", false, Example: "2026-06-02T00:00:00Z"),
        ], OperationId: "ListAuditRecords"),
        ["GET /admin/v1/audit/verify"] = new(null, [], OperationId: "VerifyAuditChain"),
        ["GET /admin/v1/hsm"] = new(null, [], OperationId: "GetHsmStatus"),
        ["POST /admin/v1/hsm/rotate"] = new("RotateKeyRequest", [], Example: """{"purpose":"seal"}""", Forms: false, OperationId: "RotateHsmKey"),
        ["POST /admin/v1/hsm/retire"] = new("RetireKeyRequest", ["not_found", "key_in_use"], Example: """{"purpose":"seal","version":1}""", Forms: false, OperationId: "RetireHsmKey"),
    };

    private static string[] Codes(params string[] lists) => [.. lists.SelectMany(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))];
}
