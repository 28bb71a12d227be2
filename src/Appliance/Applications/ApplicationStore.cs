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
        name = ValidName(name);
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
            $"SELECT {Row.Columns} FROM applications ORDER BY created_at, id"), ct);
        return rows.Select(r => r.ToApplication()).ToList();
    }

    private async Task<Application?> FindAsync(string id, CancellationToken ct = default)
    {
        var row = await db.WithConnectionAsync(c => c.QuerySingleOrDefaultAsync<Row>(
            $"SELECT {Row.Columns} FROM applications WHERE id = @id", new { id }), ct);
        return row?.ToApplication();
    }

    public async Task<Application> GetAsync(string id, CancellationToken ct = default) =>
        await FindAsync(id, ct) ?? throw new MfaException(ErrorCode.NotFound, $"no application '{id}'", "id");

    public Task<Application> UpdateSettingsAsync(string id, System.Text.Json.Nodes.JsonObject patch, CancellationToken ct = default) =>
        UpdateAsync(id, null, patch, ct);

    public Task<Application> UpdatePlanAsync(string id, string plan, CancellationToken ct = default) =>
        UpdateAsync(id, plan, [], ct);

    /// <summary>
    /// Changes the plan (when <paramref name="plan"/> is given) and some settings in one write, validated together:
    /// DUAL follows the plan (an upgrade enables it, a downgrade removes it; the patch's <c>enabled_methods</c> then
    /// decides), and DUAL enabled on a standard plan is refused, 400 naming <c>enabled_methods</c>, since every DUAL
    /// send would be refused with <c>plan_required</c>.
    /// </summary>
    public async Task<Application> UpdateAsync(string id, string? plan, System.Text.Json.Nodes.JsonObject patch, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(patch);
        if (plan is not null && !Plans.IsValid(plan))
        {
            throw new MfaException(ErrorCode.InvalidRequest, "plan must be standard or enterprise", "plan");
        }

        var app = await GetAsync(id, ct);
        var newPlan = plan ?? app.Plan;
        var settings = ApplicationSettings.Deserialize(app.Settings.Serialize());
        if (newPlan != app.Plan)
        {
            settings.EnabledMethods.Remove("DUAL");
            if (newPlan == Plans.Enterprise)
            {
                settings.EnabledMethods.Add("DUAL");
            }
        }

        settings = settings.Patch(patch);
        if (newPlan == Plans.Standard && settings.IsEnabled("DUAL"))
        {
            throw new MfaException(ErrorCode.InvalidRequest, "enabled_methods: DUAL needs the enterprise plan; this application is on the standard plan", "enabled_methods");
        }

        await db.WithConnectionAsync(c => c.ExecuteAsync(
            "UPDATE applications SET plan = @newPlan, settings = @settings WHERE id = @id", new { id, newPlan, settings = settings.Serialize() }), ct);
        return app with { Plan = newPlan, Settings = settings };
    }

    /// <summary>Renames an application (1 to 100 characters).</summary>
    public async Task<Application> RenameAsync(string id, string? name, CancellationToken ct = default)
    {
        name = ValidName(name);
        var app = await GetAsync(id, ct);
        await db.WithConnectionAsync(c => c.ExecuteAsync("UPDATE applications SET name = @name WHERE id = @id", new { id, name }), ct);
        return app with { Name = name };
    }

    private static string ValidName(string? name)
    {
        name = name?.Trim();
        return string.IsNullOrEmpty(name) || name.Length > 100 || name.Any(char.IsControl)
            ? throw new MfaException(ErrorCode.InvalidRequest, "name is required (1 to 100 characters, no control characters)", "name")
            : name;
    }

    /// <summary>An <c>applications</c> row as <see cref="Columns"/> selects it (also joined to an API key's row).</summary>
    internal sealed class Row
    {
        public const string Columns = "id, name, plan, settings, created_at AS CreatedAt";

        public string Id { get; init; } = "";

        public string Name { get; init; } = "";

        public string Plan { get; init; } = "";

        public string Settings { get; init; } = "";

        public long CreatedAt { get; init; }

        public Application ToApplication() =>
            new(Id, Name, Plan, ApplicationSettings.Deserialize(Settings), DateTimeOffset.FromUnixTimeMilliseconds(CreatedAt));
    }
}
