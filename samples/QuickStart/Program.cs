using DevRift.Client;

// Usage: dotnet run -- http://127.0.0.1:8080 sk_test_… ada@example.com
using var client = new DevRiftClient(new DevRiftClientOptions { BaseAddress = new Uri(args[0]), ApiKey = args[1] });
var challenge = await client.SendCodeAsync(args[2], DeliveryChannel.Email);
Console.WriteLine($"sent {challenge.Id}, status {challenge.Status}");
var code = await client.GetLatestTestCodeAsync(args[2], DeliveryChannel.Email); // test keys only: what the user received
var verification = await client.VerifyCodeAsync(args[2], VerificationType.Email, code);
Console.WriteLine($"valid: {verification.Valid}");

namespace DevRift.Client.Samples
{
    /// <summary>Lets a test find this program's assembly.</summary>
    public static class QuickStartMarker;
}
