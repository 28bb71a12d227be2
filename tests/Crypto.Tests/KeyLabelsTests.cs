namespace DevRift.Hsm.Crypto.Tests;

/// <summary>The <c>devrift.&lt;purpose&gt;.v&lt;N&gt;</c> label scheme.</summary>
public sealed class KeyLabelsTests
{
    [Theory]
    [InlineData(KeyPurpose.SeedKek, 1, "devrift.seed-kek.v1")]
    [InlineData(KeyPurpose.Code, 2, "devrift.code.v2")]
    [InlineData(KeyPurpose.Lookup, 10, "devrift.lookup.v10")]
    [InlineData(KeyPurpose.Seal, 123, "devrift.seal.v123")]
    [InlineData(KeyPurpose.Audit, int.MaxValue, "devrift.audit.v2147483647")]
    public void Label_formats_and_parses_back(KeyPurpose purpose, int version, string label)
    {
        // Given a purpose and version
        // When the label is formatted and parsed back
        var formatted = KeyLabels.Label(purpose, version);
        var parsed = KeyLabels.TryParseLabel(formatted, out var parsedPurpose, out var parsedVersion);

        // Then it is the documented label and parses to the same purpose and version
        Assert.Equal(label, formatted);
        Assert.True(parsed);
        Assert.Equal(purpose, parsedPurpose);
        Assert.Equal(version, parsedVersion);
    }

    [Theory]
    [InlineData(KeyPurpose.SeedKek, "seed-kek")]
    [InlineData(KeyPurpose.Code, "code")]
    [InlineData(KeyPurpose.Lookup, "lookup")]
    [InlineData(KeyPurpose.Seal, "seal")]
    [InlineData(KeyPurpose.Audit, "audit")]
    public void Purpose_name_formats_and_parses_back(KeyPurpose purpose, string name)
    {
        // Given a purpose
        // When its name is formatted and parsed back
        var formatted = KeyLabels.Name(purpose);
        var parsed = KeyLabels.TryParse(formatted, out var parsedPurpose);

        // Then it is the documented name and parses to the same purpose
        Assert.Equal(name, formatted);
        Assert.True(parsed);
        Assert.Equal(purpose, parsedPurpose);
    }

    [Fact]
    public void All_lists_the_five_purposes_in_init_order()
    {
        // Given the label scheme
        // When its purposes are listed
        // Then they are the five of the key hierarchy, in the order init creates them
        Assert.Equal([KeyPurpose.SeedKek, KeyPurpose.Code, KeyPurpose.Lookup, KeyPurpose.Seal, KeyPurpose.Audit], KeyLabels.All);
    }

    [Theory]
    [InlineData("")]
    [InlineData("devrift")]
    [InlineData("devrift.code")]
    [InlineData("devrift.code.v")]
    [InlineData("devrift.code.v0")]
    [InlineData("devrift.code.v-1")]
    [InlineData("devrift.code.v+1")]
    [InlineData("devrift.code.v 1")]
    [InlineData("devrift.code.v1x")]
    [InlineData("devrift.code.v2147483648")]
    [InlineData("devrift.code.1")]
    [InlineData("devrift..v1")]
    [InlineData("devrift.unknown.v1")]
    [InlineData("devrift.seed_kek.v1")]
    [InlineData("other.code.v1")]
    [InlineData("Devrift.code.v1")]
    [InlineData(" devrift.code.v1")]
    public void Label_outside_the_scheme_does_not_parse(string label)
    {
        // Given a label that is not devrift.<purpose>.v<N> with N >= 1
        // When it is parsed
        var parsed = KeyLabels.TryParseLabel(label, out _, out _);

        // Then it is rejected
        Assert.False(parsed);
    }

    [Theory]
    [InlineData("")]
    [InlineData(null)]
    [InlineData("kek")]
    [InlineData("seedkek")]
    public void Unknown_purpose_name_does_not_parse(string? name)
    {
        // Given a name that is no purpose
        // When it is parsed
        var parsed = KeyLabels.TryParse(name, out _);

        // Then it is rejected
        Assert.False(parsed);
    }

    [Fact]
    public void Name_of_an_undefined_purpose_is_refused()
    {
        // Given a value outside the enum
        // When its name is asked for
        var e = Record.Exception(() => KeyLabels.Name((KeyPurpose)99));

        // Then it is an argument error
        Assert.IsType<ArgumentOutOfRangeException>(e);
    }
}
