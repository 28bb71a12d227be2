// The baseline of bench/http/run.sh: Kestrel and minimal APIs with nothing behind them. Every POST answers a small
// JSON 200 shaped like a verification (so the same wrk script can check "valid":true on both servers), every
// other GET a small JSON 200; GET /healthz answers like the appliance's. No logging, no body parsing.
var builder = WebApplication.CreateSlimBuilder(args);
builder.Logging.ClearProviders();
var app = builder.Build();

app.MapGet("/healthz", () => Results.Json(new Health("ok"), BaselineJson.Default.Health));
app.MapPost("/{**path}", () => Results.Json(new Verification("verification", true), BaselineJson.Default.Verification));
app.MapGet("/{**path}", () => Results.Json(new Verification("list", true), BaselineJson.Default.Verification));

app.Run();

internal sealed record Health(string Status);

internal sealed record Verification(string Object, bool Valid);

[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.SnakeCaseLower)]
[System.Text.Json.Serialization.JsonSerializable(typeof(Health))]
[System.Text.Json.Serialization.JsonSerializable(typeof(Verification))]
internal sealed partial class BaselineJson : System.Text.Json.Serialization.JsonSerializerContext;
