using Microsoft.Extensions.DependencyInjection;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Client.Tests;

/// <summary>How an integrator wires the client: IHttpClientFactory, and the ten-line console program of the README.</summary>
public sealed class IntegrationTests(ApplianceFixture fixture) : IClassFixture<ApplianceFixture>
{
    [Fact]
    public async Task AddDevRiftClient_gives_a_working_client_from_IHttpClientFactory()
    {
        var services = new ServiceCollection();
        services.AddDevRiftClient(o =>
        {
            o.BaseAddress = fixture.Server.BaseAddress;
            o.ApiKey = fixture.Server.TestKey;
        });
        await using var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<DevRiftClient>();
        var user = TestUsers.NewEmail("di");

        await client.SendCodeAsync(user, DeliveryChannel.Email);
        var code = await client.GetLatestTestCodeAsync(user, DeliveryChannel.Email);

        Assert.True((await client.VerifyCodeAsync(user, VerificationType.Email, code)).Valid);
    }

    [Fact]
    public async Task The_quick_start_console_program_sends_reads_and_verifies()
    {
        var user = TestUsers.NewEmail("quick");
        var entry = typeof(DevRift.Client.Samples.QuickStartMarker).Assembly.EntryPoint!;
        var output = new StringWriter();
        var before = Console.Out;
        Console.SetOut(output);
        try
        {
            var result = entry.Invoke(null, [new[] { fixture.Server.BaseAddress.ToString(), fixture.Server.TestKey, user }]);
            if (result is Task task)
            {
                await task;
            }
        }
        finally
        {
            Console.SetOut(before);
        }

        Assert.Contains("valid: True", output.ToString(), StringComparison.Ordinal);
        Assert.Equal(1, await fixture.Server.CountAsync("SELECT COUNT(*) FROM challenges WHERE user_key = @user AND status = 'approved'", new { user }));
    }
}
