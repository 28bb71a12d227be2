namespace DevRift.Client.Tests;

public sealed class PhoneNumberTests
{
    [Theory]
    [InlineData("+1 415 555 2671", null, "+14155552671")]
    [InlineData("+14155552671", null, "+14155552671")]
    [InlineData("(415) 555-2671", "US", "+14155552671")]
    [InlineData("415.555.2671", "us", "+14155552671")]
    [InlineData("020 7946 0018", "GB", "+442079460018")]
    [InlineData("+44 (0)20 7946 0018", null, "+442079460018")]
    [InlineData("06 12 34 56 78", "FR", "+33612345678")]
    [InlineData("+33 6 12 34 56 78", "US", "+33612345678")]
    public void What_users_type_becomes_E164(string typed, string? region, string e164) =>
        Assert.Equal(e164, PhoneNumberFormatter.ToE164(typed, region));

    [Theory]
    [InlineData("", null, PhoneNumberProblem.Empty)]
    [InlineData("(415) 555-2671", null, PhoneNumberProblem.MissingCountryCode)]
    [InlineData("415 555 2671", "XX", PhoneNumberProblem.InvalidCountryCode)]
    [InlineData("+999 1234 5678", null, PhoneNumberProblem.InvalidCountryCode)]
    [InlineData("call me", "US", PhoneNumberProblem.NotANumber)]
    [InlineData("+1 415 55", null, PhoneNumberProblem.TooShort)]
    [InlineData("+1 415 555 2671 9999", null, PhoneNumberProblem.TooLong)]
    [InlineData("+1 123 555 2671", null, PhoneNumberProblem.NotAssigned)]
    public void An_invalid_number_is_refused_with_its_reason(string typed, string? region, PhoneNumberProblem reason)
    {
        var e = Assert.Throws<InvalidPhoneNumberException>(() => PhoneNumberFormatter.ToE164(typed, region));
        Assert.Equal(reason, e.Reason);
        Assert.False(string.IsNullOrWhiteSpace(e.Message));
    }

    [Theory]
    [InlineData("Ada@Example.com", "Ada@Example.com")]
    [InlineData("(415) 555-2671", "+14155552671")]
    [InlineData("ada@example.com:(415) 555-2671", "ada@example.com:+14155552671")]
    public void A_user_value_gets_its_phone_part_formatted(string user, string expected) =>
        Assert.Equal(expected, PhoneNumberFormatter.NormalizeUser(user, "US"));

    [Fact]
    public async Task The_client_refuses_an_invalid_number_before_any_request()
    {
        using var client = new DevRiftClient(new DevRiftClientOptions { BaseAddress = new Uri("http://127.0.0.1:9"), ApiKey = "sk_test_x" });
        var e = await Assert.ThrowsAsync<InvalidPhoneNumberException>(() => client.SendCodeAsync("555-2671", DeliveryChannel.Sms));
        Assert.Equal(PhoneNumberProblem.MissingCountryCode, e.Reason);
    }

    [Theory]
    [InlineData(null, "sk_test_x")]
    [InlineData("http://127.0.0.1:8080", null)]
    [InlineData("http://127.0.0.1:8080", "pk_test_x")]
    public void Incomplete_options_are_refused_when_the_client_is_made(string? address, string? key) =>
        Assert.Throws<InvalidOperationException>(() => new DevRiftClient(new DevRiftClientOptions { BaseAddress = address is null ? null : new Uri(address), ApiKey = key }));
}
