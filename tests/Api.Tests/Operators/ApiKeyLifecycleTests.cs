using System.Net;
using System.Net.Http.Json;
using DevRift.Hsm.Api.Tests.Audit;
using DevRift.Hsm.Api.Tests.Infrastructure;
using DevRift.Hsm.Appliance.Applications;
using Microsoft.Extensions.DependencyInjection;

namespace DevRift.Hsm.Api.Tests.Operators;

/// <summary>API keys: labels, roll with an overlap (the old key then refused by itself), and the coalesced last use.</summary>
public sealed class ApiKeyLifecycleTests(FakeClockServers servers) : IClassFixture<FakeClockServers>
{
    private static async Task<HttpStatusCode> FactorsStatusAsync(ApplianceServer server, string key)
    {
        using var client = server.NewClient(key);
        using var response = await client.GetAsync($"/v1/mfa/factors?user={Uri.EscapeDataString(TestUsers.NewEmail("roll"))}");
        return response.StatusCode;
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task A_rolled_key_gives_a_new_secret_and_the_old_one_works_until_the_overlap_ends_then_is_refused(Db db)
    {
        // Given an application with a labelled key
        var server = await servers.GetAsync(db);
        var app = await server.CreateApplicationAsync("Rolled", "standard");
        using var admin = server.AdminClient();
        using var created = await admin.PostAsJsonAsync($"/admin/v1/applications/{app}/api-keys", new { mode = "live", label = "checkout" });
        var key = await created.AssertJsonAsync(HttpStatusCode.Created, "api_key");
        var (oldId, oldSecret) = (key.GetProperty("id").GetString()!, key.GetProperty("secret").GetString()!);
        Assert.Equal("checkout", key.GetProperty("label").GetString());

        // When it is rolled with a 120-second overlap
        using var rolled = await admin.PostAsJsonAsync($"/admin/v1/applications/{app}/api-keys/{oldId}/roll", new { overlap_seconds = 120 });

        // Then 201 with the new key (secret once, same mode and label) and the old one ending in 120 s
        var roll = await rolled.AssertJsonAsync(HttpStatusCode.Created, "api_key_roll");
        Assert.Equal("no-store", rolled.Headers.CacheControl!.ToString());
        var newKey = roll.GetProperty("key");
        var newSecret = newKey.GetProperty("secret").GetString()!;
        Assert.StartsWith("sk_live_", newSecret, StringComparison.Ordinal);
        Assert.Equal(("live", "checkout"), (newKey.GetProperty("mode").GetString(), newKey.GetProperty("label").GetString()));
        var previous = roll.GetProperty("previous");
        Assert.Equal(oldId, previous.GetProperty("id").GetString());
        Assert.Equal(newKey.GetProperty("id").GetString(), previous.GetProperty("rolled_to").GetString());
        Assert.Equal(server.Clock!.GetUtcNow().AddSeconds(120).UtcDateTime, previous.GetProperty("expires_at").GetDateTime().ToUniversalTime(), TimeSpan.FromMilliseconds(1));
        Assert.False(previous.TryGetProperty("secret", out _));

        // And both keys work during the overlap
        Assert.Equal(HttpStatusCode.OK, await FactorsStatusAsync(server, oldSecret));
        Assert.Equal(HttpStatusCode.OK, await FactorsStatusAsync(server, newSecret));

        // When the overlap has passed, the old key is refused by itself and the new one goes on
        server.Clock.Advance(TimeSpan.FromSeconds(120));
        Assert.Equal(HttpStatusCode.Unauthorized, await FactorsStatusAsync(server, oldSecret));
        Assert.Equal(HttpStatusCode.OK, await FactorsStatusAsync(server, newSecret));

        // And the old key cannot be rolled again
        using var again = await admin.PostAsJsonAsync($"/admin/v1/applications/{app}/api-keys/{oldId}/roll", new { overlap_seconds = 0 });
        await again.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", "key_id");
    }

    [Fact]
    public async Task A_roll_without_overlap_refuses_the_old_key_at_once_and_is_audited_with_both_key_ids()
    {
        var server = await servers.GetAsync(Db.Sqlite);
        var app = await server.CreateApplicationAsync("Rolled Now", "standard");
        var old = await server.CreateApiKeyAsync(app, "test");
        using var admin = server.AdminClient();
        string newId = "", newSecret = "";
        var rows = await server.RowsDuringAsync(async () =>
        {
            using var rolled = await admin.PostAsJsonAsync($"/admin/v1/applications/{app}/api-keys/{old.Id}/roll", new { overlap_seconds = 0 });
            var key = (await rolled.AssertJsonAsync(HttpStatusCode.Created, "api_key_roll")).GetProperty("key");
            (newId, newSecret) = (key.GetProperty("id").GetString()!, key.GetProperty("secret").GetString()!);
        });

        Assert.Equal(HttpStatusCode.Unauthorized, await FactorsStatusAsync(server, old.Secret));
        Assert.Equal(HttpStatusCode.OK, await FactorsStatusAsync(server, newSecret));
        var record = rows.OnlyEvent("api_key.roll");
        Assert.Equal(("ok", app, "test"), (record.Outcome, record.ApplicationId, record.Mode));
        Assert.Equal(newId, record.DetailJson.GetProperty("key_id").GetString());
        Assert.Equal(old.Id, record.DetailJson.GetProperty("previous_key_id").GetString());
        Assert.DoesNotContain(newSecret[8..], record.Detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{\"overlap_seconds\": -1}", "overlap_seconds")]
    [InlineData("{\"overlap_seconds\": 2592001}", "overlap_seconds")]
    [InlineData("{\"overlap_seconds\": \"60\"}", "overlap_seconds")]
    [InlineData("{\"overlap\": 60}", "overlap")]
    public async Task A_roll_with_a_bad_overlap_is_400_naming_the_field_and_leaves_the_key_alone(string body, string param)
    {
        var server = await servers.GetAsync(Db.Sqlite);
        var app = await server.CreateApplicationAsync("Bad Overlap", "standard");
        var key = await server.CreateApiKeyAsync(app, "test");
        using var admin = server.AdminClient();
        using var response = await admin.PostAsync($"/admin/v1/applications/{app}/api-keys/{key.Id}/roll", Content.Bytes(body, "application/json"));
        await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", param);
        Assert.Equal(1, await server.CountAsync("SELECT COUNT(*) FROM api_keys WHERE application_id = @app", new { app }));
        Assert.Equal(HttpStatusCode.OK, await FactorsStatusAsync(server, key.Secret));
    }

    [Fact]
    public async Task Labels_are_set_and_cleared_and_the_last_use_is_shown_once_the_coalesced_counts_are_written()
    {
        // Given a key used twice
        var server = await servers.GetAsync(Db.Sqlite);
        var app = await server.CreateApplicationAsync("Used", "standard");
        var key = await server.CreateApiKeyAsync(app, "test");
        Assert.Equal(HttpStatusCode.OK, await FactorsStatusAsync(server, key.Secret));
        Assert.Equal(HttpStatusCode.OK, await FactorsStatusAsync(server, key.Secret));

        // When the use counts are written (every few seconds; here at once) and a label is set
        await server.Services.GetRequiredService<ApiKeyUsage>().FlushAsync();
        using var admin = server.AdminClient();
        using var labelled = await admin.PatchAsJsonAsync($"/admin/v1/applications/{app}/api-keys/{key.Id}", new { label = "mobile backend" });
        Assert.Equal("mobile backend", (await labelled.AssertJsonAsync(HttpStatusCode.OK, "api_key")).GetProperty("label").GetString());

        // Then the list shows label, last use and count
        using var list = await admin.GetAsync($"/admin/v1/applications/{app}/api-keys");
        var listed = Assert.Single((await list.AssertJsonAsync(HttpStatusCode.OK, "list")).GetProperty("data").EnumerateArray());
        Assert.Equal("mobile backend", listed.GetProperty("label").GetString());
        Assert.Equal(2, listed.GetProperty("use_count").GetInt64());
        Assert.Equal(server.Clock!.GetUtcNow().UtcDateTime, listed.GetProperty("last_used_at").GetDateTime().ToUniversalTime(), TimeSpan.FromMilliseconds(1));

        // And an empty label clears it; a label too long is 400 naming it
        using var cleared = await admin.PatchAsJsonAsync($"/admin/v1/applications/{app}/api-keys/{key.Id}", new { label = "" });
        Assert.False((await cleared.AssertJsonAsync(HttpStatusCode.OK, "api_key")).TryGetProperty("label", out _));
        using var tooLong = await admin.PatchAsJsonAsync($"/admin/v1/applications/{app}/api-keys/{key.Id}", new { label = new string('x', 101) });
        await tooLong.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", "label");
    }

    [Fact]
    public async Task The_command_line_rolls_and_labels_keys()
    {
        var server = await servers.GetAsync(Db.Sqlite);
        var app = await server.CreateApplicationAsync("Cli Roll", "standard");
        var created = await server.CliAsync("api-keys", "create", app, "test", "batch jobs");
        Assert.Equal(0, created.Exit);
        var key = System.Text.Json.JsonDocument.Parse(created.Stdout).RootElement;
        Assert.Equal("batch jobs", key.GetProperty("label").GetString());
        var oldId = key.GetProperty("id").GetString()!;

        var rolled = await server.CliAsync("api-keys", "roll", app, oldId, "30");
        Assert.Equal(0, rolled.Exit);
        var roll = System.Text.Json.JsonDocument.Parse(rolled.Stdout).RootElement;
        var newSecret = roll.GetProperty("key").GetProperty("secret").GetString()!;
        Assert.Equal(HttpStatusCode.OK, await FactorsStatusAsync(server, key.GetProperty("secret").GetString()!));
        server.Clock!.Advance(TimeSpan.FromSeconds(30));
        Assert.Equal(HttpStatusCode.Unauthorized, await FactorsStatusAsync(server, key.GetProperty("secret").GetString()!));
        Assert.Equal(HttpStatusCode.OK, await FactorsStatusAsync(server, newSecret));

        Assert.Equal(0, (await server.CliAsync("api-keys", "label", app, oldId, "retired batch")).Exit);
        var rows = await server.AuditRowsAsync();
        var label = rows.Last(r => r.Event == "api_key.label");
        Assert.Equal("retired batch", label.DetailJson.GetProperty("changes").GetProperty("label").GetProperty("to").GetString());
        Assert.Equal(oldId, rows.Last(r => r.Event == "api_key.roll").DetailJson.GetProperty("previous_key_id").GetString());
    }
}
