using DevRift.Hsm.Appliance.Challenges;
using DevRift.Hsm.Appliance.Errors;

namespace DevRift.Hsm.Appliance.Tests;

/// <summary>What users receive: the application's name, the code, its lifetime, in their language.</summary>
public sealed class MessageTemplateTests
{
    [Fact]
    public void Email_has_a_subject_and_a_body_with_code_and_lifetime()
    {
        var m = MessageTemplates.Code(Channels.Email, "Acme", "123456", TimeSpan.FromMinutes(10), "en");
        Assert.Equal("Your Acme verification code", m.Subject);
        Assert.Equal("Your Acme verification code is 123456. It expires in 10 minutes. If you did not ask for it, you can ignore this message.", m.Body);
    }

    [Theory]
    [InlineData(Channels.Sms)]
    [InlineData(Channels.WhatsApp)]
    public void Text_messages_lead_with_the_code(string channel)
    {
        var m = MessageTemplates.Code(channel, "Acme", "123456", TimeSpan.FromSeconds(60), "en");
        Assert.Null(m.Subject);
        Assert.Equal("123456 is your Acme verification code. It expires in 1 minute.", m.Body);
    }

    [Fact]
    public void Voice_spells_the_digits_twice()
    {
        var m = MessageTemplates.Code(Channels.Call, "Acme", "042", TimeSpan.FromSeconds(90), "en");
        Assert.Equal("Hello. Your Acme verification code is: 0, 4, 2. Again, your code is: 0, 4, 2. It expires in 90 seconds. Goodbye.", m.Body);
    }

    [Theory]
    [InlineData("fr-CA", "fr", "expire dans 10 minutes")]
    [InlineData("de_DE", "de", "läuft in 10 Minuten ab")]
    [InlineData("ES", "es", "Caduca en 10 minutos")]
    [InlineData("ja", "en", "expires in 10 minutes")]
    [InlineData(null, "en", "expires in 10 minutes")]
    public void Locales_fall_back_to_english(string? requested, string resolved, string fragment)
    {
        Assert.Equal(resolved, MessageTemplates.ResolveLocale(requested));
        Assert.Contains(fragment, MessageTemplates.Code(Channels.Email, "Acme", "123456", TimeSpan.FromMinutes(10), requested ?? "").Body, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("EMAIL", "EMAIL")]
    [InlineData("sms", "PHONE")]
    [InlineData(" WhatsApp ", "PHONE")]
    [InlineData("call", "PHONE")]
    [InlineData("dual", "DUAL")]
    public void Send_types_parse_case_insensitively_into_their_verify_family(string type, string family)
    {
        Assert.Equal(family, Channels.Family(Channels.ParseSendType(type)));
    }

    [Theory]
    [InlineData("APP")]
    [InlineData("FAX")]
    [InlineData("")]
    [InlineData(null)]
    public void Other_send_types_are_invalid_type(string? type)
    {
        var e = Assert.Throws<MfaException>(() => Channels.ParseSendType(type));
        Assert.Equal(ErrorCode.InvalidType, e.Error);
        Assert.Equal("type", e.Param);
    }
}
