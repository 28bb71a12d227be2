using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace DevRift.Hsm.Api.OpenApi;

/// <summary>
/// Completes the generated document: security schemes, the problem schema, request bodies in JSON and form encodings,
/// every error response with its codes, the Idempotency-Key and Retry-After headers, and examples. The facts per
/// operation are in <see cref="OperationContracts"/>.
/// </summary>
public sealed class ApiDocumentTransformer : IOpenApiDocumentTransformer
{
    public const string ApiKeyScheme = "apiKey";
    public const string OperatorScheme = "operatorToken";
    private const string Problem = "Problem";
    private const string FormMediaType = "application/x-www-form-urlencoded";

    public Task TransformAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(document);
        document.Info = new OpenApiInfo
        {
            Title = "DevRift.Hsm API",
            Version = "v1",
            Description = """
                HSM-backed multi-factor verification. Integrators call `/v1` with a secret key
                (`Authorization: Bearer sk_test_…` or `sk_live_…`); operators call `/admin/v1` with the operator token that
                `init` printed (or an operator client certificate). Every POST under `/v1` takes JSON, an ordinary URL-encoded
                form, or the documented `User=…, Type=…` form. Errors are RFC 9457 problems with a stable `code`; each code has
                a page at `/errors/{code}`.
                """,
        };
        document.Tags = new HashSet<OpenApiTag>
        {
            new() { Name = "MFA", Description = "The integrator API: send and verify codes, authenticator apps, backup codes, security keys (secret key)." },
            new() { Name = "Operator", Description = "The operator API: applications, settings, API keys, client certificates, audit log, HSM keys (operator token)." },
        };
        foreach (var server in document.Servers ?? [])
        {
            server.Url = server.Url?.TrimEnd('/');
        }

        document.Components ??= new OpenApiComponents();
        document.Components.SecuritySchemes = new Dictionary<string, IOpenApiSecurityScheme>(StringComparer.Ordinal)
        {
            [ApiKeyScheme] = new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.Http,
                Scheme = "bearer",
                BearerFormat = "sk_test_… / sk_live_…",
                Description = "An application's secret key. With mutual TLS enabled, a registered client certificate is needed too.",
            },
            [OperatorScheme] = new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.Http,
                Scheme = "bearer",
                BearerFormat = "operator token",
                Description = "The operator token printed by `init` (or a client certificate listed in Tls:OperatorCertificateThumbprints).",
            },
        };
        document.Components.Schemas ??= new Dictionary<string, IOpenApiSchema>(StringComparer.Ordinal);
        foreach (var (name, schema) in RequestSchemas.All())
        {
            document.Components.Schemas[name] = schema;
        }

        document.Components.Headers = new Dictionary<string, IOpenApiHeader>(StringComparer.Ordinal)
        {
            ["Retry-After"] = new OpenApiHeader
            {
                Description = "Seconds to wait before trying again.",
                Schema = new OpenApiSchema { Type = JsonSchemaType.Integer, Format = "int32" },
                Example = JsonValue.Create(30),
            },
        };

        foreach (var (path, item) in document.Paths)
        {
            foreach (var (method, operation) in item.Operations ?? [])
            {
                // A route without an entry still gets its group's security and common problems; the client tests
                // require an entry for every route, so a new endpoint cannot go undescribed unnoticed.
                var contract = OperationContracts.ByRoute.GetValueOrDefault($"{method.Method.ToUpperInvariant()} {path}") ?? new OperationContract(null, []);
                Apply(document, path, operation, contract);
            }
        }

        return Task.CompletedTask;
    }

    private static void Apply(OpenApiDocument document, string path, OpenApiOperation operation, OperationContract contract)
    {
        var admin = path.StartsWith("/admin/", StringComparison.Ordinal);
        operation.OperationId ??= contract.OperationId;
        operation.Security = [new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(admin ? OperatorScheme : ApiKeyScheme, document)] = [] }];
        operation.Parameters ??= [];
        foreach (var q in contract.Query ?? [])
        {
            var existing = operation.Parameters.OfType<OpenApiParameter>().FirstOrDefault(p => p.Name == q.Name && p.In == ParameterLocation.Query);
            if (existing is not null)
            {
                operation.Parameters.Remove(existing);
            }

            operation.Parameters.Add(new OpenApiParameter
            {
                Name = q.Name,
                In = ParameterLocation.Query,
                Required = q.Required,
                Description = q.Description,
                Schema = q.Integer ? new OpenApiSchema { Type = JsonSchemaType.Integer, Format = "int64" } : new OpenApiSchema { Type = JsonSchemaType.String },
                Example = q.Example is null ? null : q.Integer ? JsonValue.Create(long.Parse(q.Example, CultureInfo.InvariantCulture)) : JsonValue.Create(q.Example),
            });
        }

        foreach (var p in operation.Parameters.OfType<OpenApiParameter>().Where(p => p.In == ParameterLocation.Path))
        {
            p.Description ??= p.Name switch
            {
                "id" when path.StartsWith("/v1/mfa/keys", StringComparison.Ordinal) => "The security key's id (key_…).",
                "id" when path.StartsWith("/v1/mfa", StringComparison.Ordinal) => "The challenge id (mfa_…).",
                "id" => "The application id.",
                "keyId" => "The API key id (ak_…).",
                "certificateId" => "The client certificate registration id (cc_…).",
                _ => null,
            };
        }

        if (contract.Idempotent)
        {
            operation.Parameters.Add(new OpenApiParameter
            {
                Name = "Idempotency-Key",
                In = ParameterLocation.Header,
                Required = false,
                Description = "Makes a retried send safe: the same key within 24 hours returns the first answer instead of sending again; the same key with a different body is 409 idempotency_key_reused.",
                Schema = new OpenApiSchema { Type = JsonSchemaType.String, MaxLength = 255 },
                Example = JsonValue.Create("4f1c2a9e8b7d4c3fa1e2d3c4b5a69788"),
            });
        }

        if (contract.Body is { } body)
        {
            var content = new Dictionary<string, OpenApiMediaType>(StringComparer.Ordinal)
            {
                ["application/json"] = new() { Schema = new OpenApiSchemaReference(body, document), Example = contract.Example is null ? null : JsonNode.Parse(contract.Example) },
            };
            if (contract.Forms)
            {
                content[FormMediaType] = new() { Schema = new OpenApiSchemaReference(body, document) };
            }

            operation.RequestBody = new OpenApiRequestBody
            {
                Required = true,
                Description = contract.Forms
                    ? "JSON, an ordinary URL-encoded form, or the documented form `User=…, Type=…` (field names and values case-insensitive)."
                    : "A JSON object.",
                Content = content,
            };
        }

        operation.Responses ??= [];
        foreach (var (status, response) in operation.Responses)
        {
            if (contract.Success is { } success && status.StartsWith('2') && response is OpenApiResponse r)
            {
                r.Content = new Dictionary<string, OpenApiMediaType>(StringComparer.Ordinal)
                {
                    ["application/json"] = new() { Schema = new OpenApiSchemaReference(success, document) },
                };
            }

            if (status == "202" && contract.Idempotent && response is OpenApiResponse accepted)
            {
                accepted.Headers ??= new Dictionary<string, IOpenApiHeader>(StringComparer.Ordinal);
                accepted.Headers["Location"] = new OpenApiHeader { Description = "The challenge's URL.", Schema = new OpenApiSchema { Type = JsonSchemaType.String } };
            }
        }

        foreach (var group in Errors(admin, contract).GroupBy(ProblemCatalog.StatusOf).OrderBy(g => g.Key))
        {
            var codes = group.Select(e => e.Code).Distinct(StringComparer.Ordinal).ToList();
            var response = new OpenApiResponse
            {
                Description = "Problem: " + string.Join(", ", codes.Select(c => $"`{c}`")),
                Content = new Dictionary<string, OpenApiMediaType>(StringComparer.Ordinal)
                {
                    ["application/problem+json"] = new()
                    {
                        Schema = new OpenApiSchemaReference(Problem, document),
                        Examples = codes.ToDictionary(c => c, c => (IOpenApiExample)new OpenApiExample
                        {
                            Summary = ProblemCatalog.Get(c).Title,
                            Value = ExampleProblem(ProblemCatalog.Get(c)),
                        }, StringComparer.Ordinal),
                    },
                },
            };
            if (group.Key is 429 or 503)
            {
                response.Headers = new Dictionary<string, IOpenApiHeader>(StringComparer.Ordinal) { ["Retry-After"] = new OpenApiHeaderReference("Retry-After", document) };
            }

            operation.Responses[group.Key.ToString(CultureInfo.InvariantCulture)] = response;
        }
    }

    /// <summary>The operation's own codes and those every operation of its group can answer.</summary>
    private static IEnumerable<Appliance.Errors.ErrorCode> Errors(bool admin, OperationContract contract)
    {
        var common = new List<string> { "invalid_api_key", "hsm_unavailable", "storage_unavailable" };
        if (!admin)
        {
            common.AddRange(["client_certificate_required", "client_certificate_mismatch"]);
        }

        if (contract.Body is not null)
        {
            common.AddRange(["invalid_request", "payload_too_large", "unsupported_media_type"]);
        }

        return contract.Errors.Concat(common).Select(ProblemCatalog.Get);
    }

    private static JsonObject ExampleProblem(Appliance.Errors.ErrorCode error)
    {
        var status = ProblemCatalog.StatusOf(error);
        var example = new JsonObject
        {
            ["type"] = $"/errors/{error.Code}",
            ["title"] = error.Title,
            ["status"] = status,
            ["detail"] = Problems.ErrorPages.Describe(error.Code).Meaning,
            ["code"] = error.Code,
        };
        if (error.Code is "invalid_code")
        {
            example["param"] = "code";
            example["attempts_remaining"] = 4;
        }

        if (status is 429)
        {
            example["retry_after"] = 30;
        }

        return example;
    }
}
