using System.Net.Http.Headers;
using System.Text.RegularExpressions;
using DevRift.Generated;
using DevRift.Generated.Models;
using DevRift.Hsm.Api.Tests.Infrastructure;
using Microsoft.Kiota.Abstractions.Authentication;
using Microsoft.Kiota.Http.HttpClientLibrary;

namespace DevRift.OpenApi.Tests;

/// <summary>The client Kiota generated from /openapi/v1.json sends and verifies a code against the real appliance.</summary>
public sealed class GeneratedClientTests
{
    [Fact]
    public async Task A_generated_client_sends_reads_the_outbox_and_verifies()
    {
        await using var server = await ApplianceServer.StartAsync(Db.Sqlite);
        using var http = new HttpClient { BaseAddress = server.BaseAddress };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", server.TestKey);
        var adapter = new HttpClientRequestAdapter(new AnonymousAuthenticationProvider(), httpClient: http) { BaseUrl = server.BaseAddress.ToString().TrimEnd('/') };
        var client = new DevRiftApiClient(adapter);
        var user = TestUsers.NewEmail("kiota");

        var challenge = await client.V1.Mfa.PostAsync(new SendCodeRequest { User = user, Type = SendCodeRequest_type.EMAIL },
            c => c.Headers.Add("Idempotency-Key", Guid.NewGuid().ToString("N")));
        Assert.Equal(("challenge", "pending"), (challenge!.Object, challenge.Status));
        Assert.StartsWith("mfa_", challenge.Id, StringComparison.Ordinal);

        var messages = await client.V1.Test.Messages.GetAsync(c => c.QueryParameters.User = user);
        var code = Regex.Match(Assert.Single(messages!.Data!).Body!, @"(?<![\w-])\d{6}(?![\w-])").Value;

        var wrong = await Assert.ThrowsAsync<Problem>(() => client.V1.Mfa.Verify.PostAsync(new VerifyRequest { User = user, Type = VerifyRequest_type.EMAIL, Code = code == "000000" ? "111111" : "000000" }));
        Assert.Equal((Problem_code.Invalid_code, 401, 4), (wrong.Code, wrong.Status, wrong.AttemptsRemaining));

        var verification = await client.V1.Mfa.Verify.PostAsync(new VerifyRequest { User = user, Type = VerifyRequest_type.EMAIL, Code = code });
        Assert.Equal((true, "EMAIL", user), (verification!.Valid, verification.Type, verification.User));
        Assert.Equal("approved", (await client.V1.Mfa[challenge.Id].GetAsync())!.Status);
    }
}
