using System.Net;
using System.Text.RegularExpressions;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests.Factors;

/// <summary>Test 5: backup codes — generation in the documented forms, delivery, single use, regeneration, notices, settings.</summary>
public sealed class BackupCodeTests
{
    public static TheoryData<string, string, string[], string[]> DocumentedForms => new()
    {
        // User, Type, channels the codes go to, masked destinations
        { "ada@example.com", "EMAIL", ["EMAIL"], ["a**@example.com"] },
        { "+14155550123", "SMS", ["SMS"], ["+1*******123"] },
        { "ada@example.com:+14155550123", "DUAL", ["EMAIL", "SMS"], ["a**@example.com", "+1*******123"] },
    };

    [Theory]
    [MemberData(nameof(DocumentedForms))]
    public async Task A_backup_set_is_delivered_never_returned_and_each_code_works_once(string user, string type, string[] channels, string[] masked)
    {
        // Given a server (the demo application is on the enterprise plan, so DUAL is allowed)
        await using var server = await ApplianceServer.StartAsync(Db.Sqlite, fakeClock: true);

        // When a set is generated with the documented curl form
        using var response = await server.PostCurlAsync("/v1/mfa/backup", $"User={user}, Type={type}");
        var responseText = await response.Content.ReadAsStringAsync();
        var set = await response.AssertJsonAsync(HttpStatusCode.Accepted, "backup_set");

        // Then the response has the metadata and masked destinations only
        Assert.Equal(10, set.GetProperty("count").GetInt32());
        Assert.Equal(13, set.GetProperty("length").GetInt32());
        Assert.Equal(user, set.GetProperty("user").GetString());
        var destinations = set.GetProperty("destinations").EnumerateArray().ToList();
        Assert.Equal(channels, destinations.Select(d => d.GetProperty("channel").GetString()!).ToArray());
        Assert.Equal(masked, destinations.Select(d => d.GetProperty("to").GetString()!).ToArray());

        // and each destination's message holds the same ten codes, grouped XXXXX-XXXX-XXXX
        var destinationsByChannel = new Dictionary<string, string>
        {
            ["EMAIL"] = FactorApi.Ada,
            ["SMS"] = FactorApi.AdaPhone,
        };
        List<string>? codes = null;
        foreach (var channel in channels)
        {
            var delivered = await server.LatestBackupCodesAsync(destinationsByChannel[channel], channel);
            Assert.Equal(10, delivered.Count);
            Assert.All(delivered, c => Assert.Matches("^[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$", c));
            Assert.Equal(10, delivered.Distinct().Count());
            codes ??= delivered;
            Assert.Equal(codes, delivered);
        }

        // and the API response contains none of them, in any form
        foreach (var code in codes!)
        {
            Assert.DoesNotContain(code, responseText, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain(FactorApi.Normalised(code), responseText, StringComparison.OrdinalIgnoreCase);
        }

        var factors = await server.FactorsAsync(user);
        Assert.Equal(10, factors.GetProperty("backup_codes").GetProperty("remaining").GetInt32());
        Assert.Equal(10, factors.GetProperty("backup_codes").GetProperty("total").GetInt32());

        // When a code is typed in lowercase without hyphens, then it verifies once
        server.Clock!.Advance(TimeSpan.FromSeconds(5));
        await server.VerifyBackupAsync(user, FactorApi.Normalised(codes[0]).ToLowerInvariant()).ExpectVerifiedAsync("BACKUP");
        await server.VerifyBackupAsync(user, codes[0]).ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");

        // and a code typed with spaces instead of hyphens verifies too
        await server.VerifyBackupAsync(user, codes[1].Replace('-', ' ')).ExpectVerifiedAsync("BACKUP");

        // Then the user was told, on every destination of the set, with the count left
        foreach (var channel in channels)
        {
            var notices = (await server.MessagesAsync(destinationsByChannel[channel]))
                .Where(m => m.Channel == channel && Regex.IsMatch(m.Body, @"backup code .*was just used\..* (\d+) unused", RegexOptions.Singleline))
                .Select(m => m.Body).ToList();
            Assert.Equal(2, notices.Count);
            Assert.Contains(notices, n => n.Contains(" 9 unused", StringComparison.Ordinal));
            Assert.Contains(notices, n => n.Contains(" 8 unused", StringComparison.Ordinal));
        }

        factors = await server.FactorsAsync(user);
        Assert.Equal(8, factors.GetProperty("backup_codes").GetProperty("remaining").GetInt32());
        Assert.Equal(10, factors.GetProperty("backup_codes").GetProperty("total").GetInt32());

        // When the set is regenerated
        server.Clock.Advance(TimeSpan.FromSeconds(5));
        await server.GenerateBackupAsync(user, type);
        var fresh = await server.LatestBackupCodesAsync(destinationsByChannel[channels[0]], channels[0]);
        Assert.Empty(fresh.Intersect(codes));

        // Then an old unused code no longer works, a new one does, and the count is of the new set
        await server.VerifyBackupAsync(user, codes[2]).ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");
        await server.VerifyBackupAsync(user, fresh[0]).ExpectVerifiedAsync("BACKUP");
        factors = await server.FactorsAsync(user);
        Assert.Equal(9, factors.GetProperty("backup_codes").GetProperty("remaining").GetInt32());
        Assert.Equal(10, factors.GetProperty("backup_codes").GetProperty("total").GetInt32());
    }

    [Fact]
    public async Task Backup_code_count_and_length_settings_are_honoured()
    {
        // Given the application's settings changed to 5 codes of 16 characters
        await using var server = await ApplianceServer.StartAsync(Db.Sqlite, fakeClock: true);
        var settings = await server.PatchSettingsAsync("{\"backup_code_count\": 5, \"backup_code_length\": 16}");
        Assert.Equal(5, settings.GetProperty("backup_code_count").GetInt32());
        Assert.Equal(16, settings.GetProperty("backup_code_length").GetInt32());

        // When a set is generated
        var user = FactorApi.NewUser("settings");
        var set = await server.GenerateBackupAsync(user);

        // Then it has 5 codes of 16 characters (grouped 4-4-4-4), which work
        Assert.Equal(5, set.GetProperty("count").GetInt32());
        Assert.Equal(16, set.GetProperty("length").GetInt32());
        var codes = await server.LatestBackupCodesAsync(user);
        Assert.Equal(5, codes.Count);
        Assert.All(codes, c => Assert.Matches("^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$", c));
        await server.VerifyBackupAsync(user, codes[4]).ExpectVerifiedAsync("BACKUP");
        var factors = await server.FactorsAsync(user);
        Assert.Equal(4, factors.GetProperty("backup_codes").GetProperty("remaining").GetInt32());
        Assert.Equal(5, factors.GetProperty("backup_codes").GetProperty("total").GetInt32());

        // When the settings change again to 20 codes of 8 characters, then the next set follows them
        await server.PatchSettingsAsync("{\"backup_code_count\": 20, \"backup_code_length\": 8}");
        server.Clock!.Advance(TimeSpan.FromSeconds(5));
        set = await server.GenerateBackupAsync(user);
        Assert.Equal(20, set.GetProperty("count").GetInt32());
        Assert.Equal(8, set.GetProperty("length").GetInt32());
        codes = await server.LatestBackupCodesAsync(user);
        Assert.Equal(20, codes.Count);
        Assert.All(codes, c => Assert.Matches("^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$", c));
        await server.VerifyBackupAsync(user, codes[19].ToLowerInvariant()).ExpectVerifiedAsync("BACKUP");
        Assert.Equal(19, (await server.FactorsAsync(user)).GetProperty("backup_codes").GetProperty("remaining").GetInt32());
    }
}
