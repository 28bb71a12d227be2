using DevRift.Hsm.Appliance.Errors;
using DevRift.Hsm.Appliance.Users;

namespace DevRift.Hsm.Appliance.Tests;

/// <summary>The three forms of <c>User</c>: email, E.164 phone (libphonenumber), and <c>email:phone</c> for DUAL.</summary>
public sealed class MfaUserTests
{
    [Theory]
    [InlineData("Ada@Example.COM", "ada@example.com")]
    [InlineData("  ada.lovelace+mfa@example.co.uk ", "ada.lovelace+mfa@example.co.uk")]
    public void Emails_are_trimmed_and_compared_ignoring_case(string typed, string key)
    {
        var user = MfaUser.Parse(typed);
        Assert.Equal(key, user.Key);
        Assert.Equal(key, user.Email);
        Assert.Null(user.Phone);
        Assert.False(user.IsDual);
    }

    [Theory]
    [InlineData("+14155550123")]
    [InlineData("+447911123456")]
    [InlineData("+33612345678")]
    public void Valid_E164_numbers_are_their_own_key(string phone)
    {
        var user = MfaUser.Parse(phone);
        Assert.Equal(phone, user.Key);
        Assert.Equal(phone, user.Phone);
        Assert.Null(user.Email);
    }

    [Theory]
    [InlineData("4155550123")] // no '+'
    [InlineData("+1 415 555 0123")] // spaces
    [InlineData("+1-415-555-0123")]
    [InlineData("+1415555012345678")] // more than 15 digits
    [InlineData("+")]
    public void Anything_but_E164_is_invalid_phone_number_showing_the_format(string phone)
    {
        var e = Assert.Throws<MfaException>(() => MfaUser.Parse(phone));
        Assert.Equal(ErrorCode.InvalidPhoneNumber, e.Error);
        Assert.Equal("user", e.Param);
        Assert.Contains("E.164", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("+447700900123", "its length fits GB (+44), but it is not a possible number there")] // Ofcom's drama range
    [InlineData("+10000000000", "its length fits US (+1), but it is not a possible number there")]
    [InlineData("+4412", "too short for a number in GB (+44)")]
    [InlineData("+141555501234567", "too long for a number in US (+1)")]
    [InlineData("+99912345678", "it does not start with a country calling code")]
    public void A_number_of_E164_shape_that_is_not_valid_says_why(string phone, string why)
    {
        var e = Assert.Throws<MfaException>(() => MfaUser.Parse(phone));
        Assert.Equal(ErrorCode.InvalidPhoneNumber, e.Error);
        Assert.Equal("user", e.Param);
        Assert.Equal($"'user' is not a valid phone number: {why}", e.Message.Split(" (no such", 2)[0]);
        Assert.DoesNotContain(phone, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ada@")]
    [InlineData("@example.com")]
    [InlineData("ada@example")]
    [InlineData("ada @example.com")]
    [InlineData("ada@example.com, bob@example.com")]
    [InlineData("Ada <ada@example.com>")]
    public void Malformed_emails_are_invalid_email(string email)
    {
        var e = Assert.Throws<MfaException>(() => MfaUser.Parse(email));
        Assert.Equal(ErrorCode.InvalidEmail, e.Error);
        Assert.Equal("user", e.Param);
    }

    [Fact]
    public void Dual_is_email_then_phone_and_keeps_both()
    {
        var user = MfaUser.Parse("Ada@Example.com:+14155550123");
        Assert.True(user.IsDual);
        Assert.Equal("ada@example.com:+14155550123", user.Key);
        Assert.Equal("ada@example.com", user.Email);
        Assert.Equal("+14155550123", user.Phone);
    }

    [Theory]
    [InlineData("+14155550123:ada@example.com", "invalid_user")] // wrong order
    [InlineData("ada@example.com:4155550123", "invalid_phone_number")]
    [InlineData("ada@:+14155550123", "invalid_email")]
    public void Dual_in_the_wrong_shape_names_what_is_wrong(string value, string code)
    {
        var e = Assert.Throws<MfaException>(() => MfaUser.ParseDual(value));
        Assert.Equal(code, e.Error.Code);
        Assert.Equal("user", e.Param);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData(null)]
    public void A_missing_user_is_invalid_user(string? value)
    {
        var e = Assert.Throws<MfaException>(() => MfaUser.Parse(value));
        Assert.Equal(ErrorCode.InvalidUser, e.Error);
    }

    [Fact]
    public void Overlong_values_are_refused_before_parsing()
    {
        var e = Assert.Throws<MfaException>(() => MfaUser.Parse(new string('a', 320) + "@example.com"));
        Assert.Equal(ErrorCode.InvalidUser, e.Error);
        Assert.Contains("320", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("cust-42")]
    [InlineData("!~")]
    [InlineData("3f2504e0-4f89-11d3-9a0c-0305e82c3301")]
    [InlineData("CN=Ada,OU=People,DC=example,DC=com")]
    public void A_user_id_of_printable_ASCII_without_spaces_is_kept_exactly(string userId)
    {
        var user = MfaUser.Parse("ada@example.com").WithUserId(userId);
        Assert.Equal((userId, "ada@example.com"), (user.UserId, user.Key));
    }

    [Fact]
    public void A_user_id_of_128_characters_is_kept_and_an_empty_one_is_not_given()
    {
        Assert.Equal(128, MfaUser.ParseUserId(new string('x', 128))!.Length);
        Assert.Null(MfaUser.ParseUserId(""));
        Assert.Null(MfaUser.ParseUserId(null));
    }

    [Theory]
    [InlineData("has space")]
    [InlineData("tab\there")]
    [InlineData("caf\u00e9")]
    [InlineData("nul\u0000")]
    [InlineData("del\u007f")]
    public void A_user_id_with_spaces_controls_or_non_ASCII_is_invalid_user_id_naming_the_field(string userId)
    {
        var e = Assert.Throws<MfaException>(() => MfaUser.ParseUserId(userId));
        Assert.Equal((ErrorCode.InvalidUserId, "user_id"), (e.Error, e.Param));
        Assert.DoesNotContain(userId, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_user_id_of_129_characters_is_invalid_user_id()
    {
        var e = Assert.Throws<MfaException>(() => MfaUser.ParseUserId(new string('x', 129)));
        Assert.Equal(ErrorCode.InvalidUserId, e.Error);
    }
}
