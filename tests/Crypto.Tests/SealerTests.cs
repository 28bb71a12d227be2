using System.Buffers.Binary;
using System.Text;

namespace DevRift.Hsm.Crypto.Tests;

/// <summary>AES-256-GCM sealing with the HSM seal key: format, binding to context, tamper detection.</summary>
public sealed class SealerTests(InitialisedToken token) : IClassFixture<InitialisedToken>
{
    private const int HeaderLength = 1 + 4 + 12;
    private const int TagLength = 16;
    private static readonly byte[] s_message = Encoding.UTF8.GetBytes("Your DevRift code is 418203. It expires in 10 minutes.");

    [Theory]
    [InlineData(1)]
    [InlineData(16)]
    [InlineData(55)]
    [InlineData(4096)]
    public void Sealed_blob_opens_to_the_plaintext(int length)
    {
        // Given a plaintext of some length
        var plaintext = new byte[length];
        Random.Shared.NextBytes(plaintext);
        var sealer = new Sealer(token.Hsm);

        // When it is sealed and opened with the same context
        var blob = sealer.Seal(plaintext, "outbox:42");
        var opened = sealer.Open(blob, "outbox:42");

        // Then the plaintext comes back, in a blob of header + ciphertext + tag naming key version 1
        Assert.Equal(plaintext, opened);
        Assert.Equal(HeaderLength + length + TagLength, blob.Length);
        Assert.Equal(0x01, blob[0]);
        Assert.Equal(1, BinaryPrimitives.ReadInt32BigEndian(blob.AsSpan(1)));
        Assert.Equal(1, Sealer.VersionOf(blob));
    }

    [Fact]
    public void Empty_plaintext_round_trips()
    {
        // Given an empty plaintext
        var sealer = new Sealer(token.Hsm);

        // When it is sealed and opened
        var blob = sealer.Seal([], "outbox:empty");

        // Then it is a header and a tag, and opens to nothing
        Assert.Equal(HeaderLength + TagLength, blob.Length);
        Assert.Empty(sealer.Open(blob, "outbox:empty"));
    }

    [Fact]
    public void Ciphertext_does_not_contain_the_plaintext()
    {
        // Given a message holding a code
        var sealer = new Sealer(token.Hsm);

        // When it is sealed
        var blob = sealer.Seal(s_message, "outbox:1");

        // Then neither the message nor the code appears in the blob
        Assert.True(blob.AsSpan().IndexOf(s_message) < 0);
        Assert.True(blob.AsSpan().IndexOf("418203"u8) < 0);
        Assert.True(blob.AsSpan().IndexOf(s_message.AsSpan(0, 8)) < 0);
    }

    [Fact]
    public void Sealing_the_same_plaintext_twice_gives_different_blobs()
    {
        // Given one message and context
        var sealer = new Sealer(token.Hsm);

        // When it is sealed twice
        var first = sealer.Seal(s_message, "outbox:1");
        var second = sealer.Seal(s_message, "outbox:1");

        // Then the IVs differ and so do the ciphertexts, and both open
        Assert.NotEqual(first.AsSpan(5, 12).ToArray(), second.AsSpan(5, 12).ToArray());
        Assert.NotEqual(first.AsSpan(HeaderLength).ToArray(), second.AsSpan(HeaderLength).ToArray());
        Assert.Equal(s_message, sealer.Open(first, "outbox:1"));
        Assert.Equal(s_message, sealer.Open(second, "outbox:1"));
    }

    [Theory]
    [InlineData("outbox:43")]
    [InlineData("outbox:4")]
    [InlineData("")]
    public void Opening_with_another_context_does_not_return_the_plaintext(string otherContext)
    {
        // Given a blob sealed for one row
        var sealer = new Sealer(token.Hsm);
        var blob = sealer.Seal(s_message, "outbox:42");

        // When it is opened for another
        var e = Record.Exception(() => sealer.Open(blob, otherContext));

        // Then the tag does not verify and the HSM gives nothing back
        Assert.IsAssignableFrom<HsmException>(e);
    }

    [Theory]
    [InlineData("outbox:43")]
    [InlineData("outbox:4")]
    [InlineData("")]
    public void Opening_with_another_context_is_refused_as_bad_data(string otherContext)
    {
        // Given a blob sealed for one row
        var sealer = new Sealer(token.Hsm);
        var blob = sealer.Seal(s_message, "outbox:42");

        // When it is opened for another
        var e = Record.Exception(() => sealer.Open(blob, otherContext));

        // Then the tag does not verify and the data is refused
        Assert.IsType<HsmDataException>(e);
    }

    [Theory]
    [InlineData(0)] // format byte
    [InlineData(1)] // key version, high byte
    [InlineData(4)] // key version, low byte
    [InlineData(5)] // first IV byte
    [InlineData(16)] // last IV byte
    [InlineData(17)] // first ciphertext byte
    [InlineData(-1)] // last tag byte
    public void Blob_with_a_flipped_byte_does_not_open(int position)
    {
        // Given a sealed blob with one byte flipped
        var sealer = new Sealer(token.Hsm);
        var blob = sealer.Seal(s_message, "outbox:42");
        blob[position < 0 ? blob.Length + position : position] ^= 0x01;

        // When it is opened with the right context
        var e = Record.Exception(() => sealer.Open(blob, "outbox:42"));

        // Then it fails in the layer and no plaintext comes back
        Assert.IsAssignableFrom<HsmException>(e);
    }

    [Theory]
    [InlineData(0, "not a sealed blob")]
    [InlineData(1, "the token has no devrift.seal.v16777217 key")]
    [InlineData(4, "the token has no devrift.seal.v0 key")]
    public void Blob_with_a_flipped_header_byte_is_refused_as_bad_data(int position, string message)
    {
        // Given a sealed blob whose format or key-version byte is flipped
        var sealer = new Sealer(token.Hsm);
        var blob = sealer.Seal(s_message, "outbox:42");
        blob[position] ^= 0x01;

        // When it is opened with the right context
        var e = Record.Exception(() => sealer.Open(blob, "outbox:42"));

        // Then it is refused as bad data, saying why
        Assert.Equal(message, Assert.IsType<HsmDataException>(e).Message);
    }

    [Theory]
    [InlineData(5)] // first IV byte
    [InlineData(16)] // last IV byte
    [InlineData(17)] // first ciphertext byte
    [InlineData(-1)] // last tag byte
    public void Blob_with_a_flipped_iv_ciphertext_or_tag_byte_is_refused_as_bad_data(int position)
    {
        // Given a sealed blob with one byte of its GCM input flipped
        var sealer = new Sealer(token.Hsm);
        var blob = sealer.Seal(s_message, "outbox:42");
        blob[position < 0 ? blob.Length + position : position] ^= 0x01;

        // When it is opened with the right context
        var e = Record.Exception(() => sealer.Open(blob, "outbox:42"));

        // Then the tag does not verify and the data is refused, with the connection still up
        Assert.IsType<HsmDataException>(e);
        Assert.True(token.Hsm.IsAvailable);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(32)]
    public void Blob_too_short_to_hold_header_and_tag_is_refused(int length)
    {
        // Given a byte string shorter than header + tag
        var sealer = new Sealer(token.Hsm);
        var blob = new byte[length];
        if (length > 0)
        {
            blob[0] = 0x01;
        }

        // When it is opened
        var e = Record.Exception(() => sealer.Open(blob, "outbox:42"));

        // Then it is refused without reaching the HSM
        Assert.Equal("not a sealed blob", Assert.IsType<HsmDataException>(e).Message);
    }
}
