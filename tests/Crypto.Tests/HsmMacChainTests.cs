namespace DevRift.Hsm.Crypto.Tests;

/// <summary>A MAC chain computed in one HSM operation is the chain of single MACs.</summary>
public sealed class HsmMacChainTests(InitialisedToken token) : IClassFixture<InitialisedToken>
{
    private readonly HsmMac _mac = new(token.Hsm);

    [Fact]
    public void A_chain_in_one_operation_equals_one_mac_per_link()
    {
        // Given a starting MAC and three messages of different lengths (one empty)
        var start = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
        byte[][] messages = ["first record"u8.ToArray(), [], new byte[300]];

        // When the chain is signed in one operation
        var chain = _mac.SignChained(KeyPurpose.Audit, start, messages);

        // Then each link is HMAC(audit key, previous ‖ message) with the current version, as single signs give it
        var previous = start;
        Assert.Equal(3, chain.Count);
        for (var i = 0; i < messages.Length; i++)
        {
            var single = _mac.Sign(KeyPurpose.Audit, [.. previous, .. messages[i]]);
            Assert.Equal(single.Version, chain[i].Version);
            Assert.Equal(single.Mac, chain[i].Mac);
            Assert.Equal(32, chain[i].Mac.Length);
            previous = chain[i].Mac;
        }

        // And a chain from another start differs at every link
        var other = _mac.SignChained(KeyPurpose.Audit, new byte[32], messages);
        Assert.All(Enumerable.Range(0, 3), i => Assert.NotEqual(chain[i].Mac, other[i].Mac));
    }

    [Fact]
    public void Only_mac_purposes_can_chain()
    {
        Assert.ThrowsAny<ArgumentException>(() => _mac.SignChained(KeyPurpose.SeedKek, new byte[32], [[1]]));
    }
}
