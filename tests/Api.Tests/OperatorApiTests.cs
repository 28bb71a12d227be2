using System.Net;
using System.Net.Http.Json;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests;

/// <summary>The operator API under <c>/admin/v1</c>: applications, settings with their ranges, keys, and its token.</summary>
public sealed class OperatorApiTests(SystemClockServers servers) : IClassFixture<SystemClockServers>
{
    [Fact]
    public async Task Applications_are_listed_as_a_list_object_with_id_name_and_plan()
    {
        // Given the demo application and one created through the operator API
        var server = await servers.GetAsync(Db.Sqlite);
        var created = await server.CreateApplicationAsync("Listed Shop", "standard");

        // When the operator lists applications
        using var admin = server.AdminClient();
        using var response = await admin.GetAsync("/admin/v1/applications");

        // Then {"object":"list","data":[{"object":"application","id","name","plan","created_at"}, …]}
        var list = await response.AssertJsonAsync(HttpStatusCode.OK, "list");
        var data = list.GetProperty("data").EnumerateArray().ToList();
        var demo = Assert.Single(data, a => a.GetProperty("id").GetString() == server.ApplicationId);
        Assert.Equal("application", demo.GetProperty("object").GetString());
        Assert.Equal("Demo", demo.GetProperty("name").GetString());
        Assert.Equal("enterprise", demo.GetProperty("plan").GetString());
        Assert.True(demo.TryGetProperty("created_at", out _));
        var shop = Assert.Single(data, a => a.GetProperty("id").GetString() == created);
        Assert.Equal("Listed Shop", shop.GetProperty("name").GetString());
        Assert.Equal("standard", shop.GetProperty("plan").GetString());
        Assert.StartsWith("app_", created, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{\"code_length\": 11}", "code_length", "between 4 and 10")]
    [InlineData("{\"code_length\": 3}", "code_length", "between 4 and 10")]
    [InlineData("{\"code_lifetime_seconds\": 10}", "code_lifetime_seconds", "between 30 and 86400")]
    [InlineData("{\"attempts_per_challenge\": 0}", "attempts_per_challenge", "between 1 and 100")]
    [InlineData("{\"resend_cooldown_seconds\": -1}", "resend_cooldown_seconds", "between 0 and 3600")]
    [InlineData("{\"backup_code_count\": 21}", "backup_code_count", "between 1 and 20")]
    [InlineData("{\"enabled_methods\": [\"EMAIL\", \"FAX\"]}", "enabled_methods", "FAX")]
    [InlineData("{\"code_length\": \"six\"}", "code_length", "wrong type")]
    [InlineData("{\"colour\": \"blue\"}", "colour", "not a setting")]
    public async Task Settings_outside_their_range_are_400_invalid_request_naming_the_field_and_change_nothing(string patch, string param, string detail)
    {
        // Given an application with default settings
        var server = await servers.GetAsync(Db.Sqlite);
        var (id, _) = await server.CreateApplicationWithKeyAsync("Ranges", "standard");

        // When the operator patches a setting out of its range
        using var admin = server.AdminClient();
        using var response = await admin.PatchAsync($"/admin/v1/applications/{id}/settings", Content.Bytes(patch, "application/json"));

        // Then 400 invalid_request naming the setting, its range in the detail
        var problem = await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", param);
        Assert.Contains(detail, problem.GetProperty("detail").GetString(), StringComparison.Ordinal);

        // And the settings are unchanged
        using var read = await admin.GetAsync($"/admin/v1/applications/{id}/settings");
        var settings = await read.AssertJsonAsync(HttpStatusCode.OK, "settings");
        Assert.Equal(6, settings.GetProperty("code_length").GetInt32());
        Assert.Equal(600, settings.GetProperty("code_lifetime_seconds").GetInt32());
        Assert.Equal(5, settings.GetProperty("attempts_per_challenge").GetInt32());
    }

    [Fact]
    public async Task A_settings_change_applies_to_the_next_send()
    {
        // Given an application patched to 8-digit codes
        var server = await servers.GetAsync(Db.Sqlite);
        var (id, key) = await server.CreateApplicationWithKeyAsync("Eight Digits", "standard");
        using (var patched = await server.PatchSettingsAsync(id, new { code_length = 8 }))
        {
            var settings = await patched.AssertJsonAsync(HttpStatusCode.OK, "settings");
            Assert.Equal(8, settings.GetProperty("code_length").GetInt32());
        }

        // When it sends a code
        var user = TestUsers.NewEmail("eight");
        await server.SendAcceptedAsync(user, "EMAIL", key);

        // Then the code has 8 digits and verifies
        var code = await server.LatestCodeAsync(user, "EMAIL", key);
        Assert.Matches("^[0-9]{8}$", code);
        using var verify = await server.VerifyCodeAsync(user, "EMAIL", code, key);
        await verify.AssertJsonAsync(HttpStatusCode.OK, "verification");
    }

    [Fact]
    public async Task A_missing_or_wrong_operator_token_is_401()
    {
        // Given tokens that are not this appliance's operator token
        var server = await servers.GetAsync(Db.Sqlite);
        var wrong = "adm_" + server.OperatorToken[4..14] + new string('Z', 32);
        foreach (var token in new[] { null, wrong, "adm_nope", server.TestKey })
        {
            // When each is presented to the operator API
            using var admin = server.NewClient(token);
            using var list = await admin.GetAsync("/admin/v1/applications");
            using var create = await admin.PostAsJsonAsync("/admin/v1/applications", new { name = "Intruder", plan = "enterprise" });
            using var patch = await admin.PatchAsync($"/admin/v1/applications/{server.ApplicationId}/settings", JsonContent.Create(new { code_length = 4 }));

            // Then 401 for every call, and nothing changed
            await list.AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_api_key");
            await create.AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_api_key");
            await patch.AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_api_key");
        }

        Assert.Equal(0, await server.CountAsync("SELECT COUNT(*) FROM applications WHERE name = 'Intruder'"));
    }

    [Fact]
    public async Task An_api_keys_secret_is_shown_at_creation_only_and_stored_as_a_verifier()
    {
        // Given a key just created
        var server = await servers.GetAsync(Db.Sqlite);
        var key = await server.CreateApiKeyAsync(server.ApplicationId, "live");

        // When the operator lists the application's keys
        using var admin = server.AdminClient();
        using var response = await admin.GetAsync($"/admin/v1/applications/{server.ApplicationId}/api-keys");

        // Then the key is listed by id and hint, without its secret
        var body = await response.Content.ReadAsStringAsync();
        var listed = Assert.Single((await response.AssertJsonAsync(HttpStatusCode.OK, "list")).GetProperty("data").EnumerateArray(),
            k => k.GetProperty("id").GetString() == key.Id);
        Assert.Equal("live", listed.GetProperty("mode").GetString());
        Assert.DoesNotContain(key.Secret, body, StringComparison.Ordinal);
        Assert.DoesNotContain(key.Secret[18..], body, StringComparison.Ordinal);

        // And the database holds no part of the secret beyond its public id and hint
        Assert.Equal(0, await server.CountAsync("SELECT COUNT(*) FROM api_keys WHERE hint LIKE @s OR id LIKE @s", new { s = "%" + key.Secret[18..] + "%" }));
    }

    [Fact]
    public async Task Unknown_applications_and_keys_are_404_not_found()
    {
        // Given ids that do not exist
        var server = await servers.GetAsync(Db.Sqlite);
        using var admin = server.AdminClient();

        // When they are read, patched or revoked
        using var read = await admin.GetAsync("/admin/v1/applications/app_nothere");
        using var patch = await admin.PatchAsync("/admin/v1/applications/app_nothere/settings", JsonContent.Create(new { code_length = 8 }));
        using var revoke = await admin.DeleteAsync($"/admin/v1/applications/{server.ApplicationId}/api-keys/ak_nothere");

        // Then 404 not_found
        await read.AssertProblemAsync(HttpStatusCode.NotFound, "not_found", "id");
        await patch.AssertProblemAsync(HttpStatusCode.NotFound, "not_found", "id");
        await revoke.AssertProblemAsync(HttpStatusCode.NotFound, "not_found", "key_id");
    }

    [Fact]
    public async Task Upgrading_the_plan_enables_DUAL_and_downgrading_removes_it()
    {
        // Given a standard application, where DUAL is 403 plan_required
        var server = await servers.GetAsync(Db.Sqlite);
        var (id, key) = await server.CreateApplicationWithKeyAsync("Upgrader", "standard");
        var user = $"{TestUsers.NewEmail("dual")}:{TestUsers.NewPhone()}";
        using (var before = await server.SendCodeAsync(user, "DUAL", key))
        {
            await before.AssertProblemAsync(HttpStatusCode.Forbidden, "plan_required", "type");
        }

        // When the operator moves it to the enterprise plan
        using var admin = server.AdminClient();
        using (var up = await admin.PatchAsync($"/admin/v1/applications/{id}/settings", JsonContent.Create(new { plan = "enterprise" })))
        {
            var settings = await up.AssertJsonAsync(HttpStatusCode.OK);
            Assert.Contains("DUAL", settings.GetProperty("enabled_methods").EnumerateArray().Select(m => m.GetString()));
        }

        // Then DUAL sends are accepted
        using (var dual = await server.SendCodeAsync(user, "DUAL", key))
        {
            await dual.AssertJsonAsync(HttpStatusCode.Accepted, "challenge");
        }

        // And back on the standard plan DUAL leaves the enabled methods and is refused again
        using (var down = await admin.PatchAsync($"/admin/v1/applications/{id}/settings", JsonContent.Create(new { plan = "standard" })))
        {
            var settings = await down.AssertJsonAsync(HttpStatusCode.OK);
            Assert.DoesNotContain("DUAL", settings.GetProperty("enabled_methods").EnumerateArray().Select(m => m.GetString()));
        }

        using var after = await server.SendCodeAsync(user, "DUAL", key);
        await after.AssertProblemAsync(HttpStatusCode.Forbidden, "plan_required", "type");
    }
}
