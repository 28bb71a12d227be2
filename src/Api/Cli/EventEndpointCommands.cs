using DevRift.Hsm.Api.Admin;
using DevRift.Hsm.Appliance.Errors;
using DevRift.Hsm.Appliance.Events;

namespace DevRift.Hsm.Api.Cli;

/// <summary>
/// An application's event endpoint on the command line (the same store and audit detail as <c>/admin/v1</c>):
/// <code>
/// event-endpoint get APP
/// event-endpoint set APP URL [EVENT …]
/// event-endpoint remove APP
/// event-endpoint rotate-secret APP
/// </code>
/// A new endpoint's secret, and a rotated one, are printed once.
/// </summary>
public static class EventEndpointCommands
{
    private const string Usage = "usage: event-endpoint get APP | event-endpoint set APP URL [EVENT …] | event-endpoint remove APP | event-endpoint rotate-secret APP";

    public sealed record Removed(string Object, string ApplicationId, bool Deleted);

    public static async Task<object> RunAsync(IServiceProvider services, string[] words)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(words);
        var endpoints = services.GetRequiredService<EventEndpoints>();
        switch (words)
        {
            case ["get", var app]:
                return EventEndpointResponse.From(await endpoints.GetAsync(app));
            case ["set", var app, var url, .. var events]:
                var before = await endpoints.TryGetAsync(app);
                var configured = await endpoints.ConfigureAsync(app, url, events.Length == 0 ? null : events);
                return new OperatorCommands.Changed(EventEndpointResponse.From(configured.Endpoint, configured.Secret),
                    EventEndpointEndpoints.Changes(before, configured.Endpoint, configured.Secret is null ? null : "generated"));
            case ["remove", var app]:
                var removed = await endpoints.RemoveAsync(app);
                return new OperatorCommands.Changed(new Removed("event_endpoint", app, true), EventEndpointEndpoints.Changes(removed, null, null));
            case ["rotate-secret", var app]:
                var rotated = await endpoints.RotateSecretAsync(app);
                return new OperatorCommands.Changed(EventEndpointResponse.From(rotated.Endpoint, rotated.Secret), new System.Text.Json.Nodes.JsonObject { ["secret"] = "rotated" });
            default:
                throw new MfaException(ErrorCode.InvalidRequest, Usage);
        }
    }
}
