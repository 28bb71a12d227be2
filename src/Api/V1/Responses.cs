using DevRift.Hsm.Appliance.Challenges;
using DevRift.Hsm.Appliance.Outbox;
using DevRift.Hsm.Appliance.Payments;

namespace DevRift.Hsm.Api.V1;

/// <summary>Wire shapes of <c>/v1</c> (snake_case by the host's JSON policy; times in UTC).</summary>
public sealed record ChallengeResponse(
    string Object, string Id, string User, string Type, string Status, IReadOnlyList<ChannelResponse> Channels,
    DateTime CreatedAt, DateTime ExpiresAt, int AttemptsRemaining, bool Livemode, TransactionResponse? Transaction = null)
{
    public static ChallengeResponse From(ChallengeView v)
    {
        ArgumentNullException.ThrowIfNull(v);
        return new("challenge", v.Id, v.User, v.Type, v.Status,
            v.Channels.Select(c => new ChannelResponse(c.Channel, c.To, c.Status, c.Reason, c.UpdatedAt.UtcDateTime)).ToList(),
            v.CreatedAt.UtcDateTime, v.ExpiresAt.UtcDateTime, v.AttemptsRemaining, v.LiveMode, TransactionResponse.From(v.Transaction));
    }
}

public sealed record ChannelResponse(string Channel, string To, string Status, string? Reason, DateTime UpdatedAt);

public sealed record VerificationResponse(string Object, bool Valid, string User, string Type, DateTime VerifiedAt, bool Livemode, TransactionResponse? Transaction = null)
{
    public static VerificationResponse From(Verification v)
    {
        ArgumentNullException.ThrowIfNull(v);
        return new("verification", true, v.User, v.Type, v.VerifiedAt.UtcDateTime, v.LiveMode, TransactionResponse.From(v.Transaction));
    }
}

/// <summary>The payment a challenge's codes are bound to, or that a verification authorised, in canonical form.</summary>
public sealed record TransactionResponse(string Amount, string Currency, string Payee, string? Reference)
{
    public static TransactionResponse? From(Transaction? t) => t is null ? null : new(t.Amount, t.Currency, t.Payee, t.Reference);
}

public sealed record ListResponse<T>(string Object, IReadOnlyList<T> Data);

public static class ListResponse
{
    public static ListResponse<T> Of<T>(IReadOnlyList<T> data) => new("list", data);
}

public sealed record TestMessageResponse(string Object, string Id, string Channel, string To, string? Subject, string Body, DateTime CreatedAt)
{
    public static TestMessageResponse From(TestMessage m)
    {
        ArgumentNullException.ThrowIfNull(m);
        return new("test_message", m.Id, m.Channel, m.To, m.Subject, m.Body, m.CreatedAt.UtcDateTime);
    }
}
