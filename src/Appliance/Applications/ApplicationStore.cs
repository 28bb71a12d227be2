using Dapper;
using DevRift.Hsm.Appliance.Errors;
using DevRift.Hsm.Appliance.Storage;
using DevRift.Hsm.Appliance.Users;

namespace DevRift.Hsm.Appliance.Applications;

/// <summary>An integrator's application.</summary>
public sealed record Application(string Id, string Name, string Plan, ApplicationSettings Settings, DateTimeOffset CreatedAt);

/// <summary>Applications and their settings.</summary>
public sealed class ApplicationStore(Database db, TimeProvider time)
{
    public async Task<Application> CreateAsync(string? name, string? plan, CancellationToken ct = default)
    {
        name = name?.Trim();
        if (string.IsNullOrEmpty(name) || name.Length > 100)
        {
            throw new MfaException(ErrorCode.InvalidRequest, "name is required (1 to 100 characters)", "name");
        }

        plan = string.IsNullOrEmpty(plan) ? Plans.Standard : plan.Trim().ToLowerInvariant();
        if (!Plans.IsValid(plan))
        {
            throw new MfaException(ErrorCode.InvalidRequest, "plan must be standard or enterprise", "plan");
        }

        var app = new Application(Ids.New("app_"), name, plan, ApplicationSettings.DefaultsFor(plan), time.GetUtcNow());
        await db.WithConnectionAsync(c => c.ExecuteAsync(
            "INSERT INTO applications (id, name, plan, settings, created_at) VALUES (@Id, @Name, @Plan, @Settings, @CreatedAt)",
            new { app.Id, app.Name, app.Plan, Settings = app.Settings.Serialize(), CreatedAt = app.CreatedAt.ToUnixTimeMilliseconds() }), ct);
        return app;
    }

    public async Task<IReadOnlyList<Application>> ListAsync(CancellationToken ct = default)
    {
        var rows = await db.WithConnectionAsync(c => c.QueryAsync<Row>(
            "SELECT id, name, plan, settings, created_at AS CreatedAt FROM applications ORDER BY created_at, id"), ct);
        return rows.Select(r => r.ToApplication()).ToList();
    }

    public async Task<Application?> FindAsync(string id, CancellationToken ct = default)
    {
        var row = await db.WithConnectionAsync(c => c.QuerySingleOrDefaultAsync<Row>(
            "SELECT id, name, plan, settings, created_at AS CreatedAt FROM applications WHERE id = @id", new { id }), ct);
        return row?.ToApplication();
    }

    public async Task<Application> GetAsync(string id, CancellationToken ct = default) =>
        await FindAsync(id, ct) ?? throw new MfaException(ErrorCode.NotFound, $"no application '{id}'", "id");

    public async Task<Application> UpdateSettingsAsync(string id, System.Text.Json.Nodes.JsonObject patch, CancellationToken ct = default)
    {
        var app = await GetAsync(id, ct);
        var settings = app.Settings.Patch(patch);
        await db.WithConnectionAsync(c => c.ExecuteAsync(
            "UPDATE applications SET settings = @settings WHERE id = @id", new { id, settings = settings.Serialize() }), ct);
        return app with { Settings = settings };
    }

    public async Task<Application> UpdatePlanAsync(string id, string plan, CancellationToken ct = default)
    {
        if (!Plans.IsValid(plan))
        {
            throw new MfaException(ErrorCode.InvalidRequest, "plan must be standard or enterprise", "plan");
        }

        var app = await GetAsync(id, ct);
        // DUAL follows the plan: an upgrade enables it, a downgrade removes it (a later enabled_methods patch still decides).
        var settings = ApplicationSettings.Deserialize(app.Settings.Serialize());
        if (plan != app.Plan)
        {
            settings.EnabledMethods.Remove("DUAL");
            if (plan == Plans.Enterprise)
            {
                settings.EnabledMethods.Add("DUAL");
            }
        }

        await db.WithConnectionAsync(c => c.ExecuteAsync(
            "UPDATE applications SET plan = @plan, settings = @settings WHERE id = @id", new { id, plan, settings = settings.Serialize() }), ct);
        return app with { Plan = plan, Settings = settings };
    }

    private sealed class Row
    {
        public string Id { get; init; } = "";

        public string Name { get; init; } = "";

        public string Plan { get; init; } = "";

        public string Settings { get; init; } = "";

        public long CreatedAt { get; init; }

        public Application ToApplication() =>
            new(Id, Name, Plan, ApplicationSettings.Deserialize(Settings), DateTimeOffset.FromUnixTimeMilliseconds(CreatedAt));
    }
}
