using System.ComponentModel.DataAnnotations;

namespace DevRift.Hsm.Appliance.Storage;

/// <summary>Where the appliance keeps its data: a SQLite file (one node) or PostgreSQL (several nodes).</summary>
public sealed class StorageOptions
{
    public const string Section = "Storage";

    /// <summary>
    /// ADO.NET connection string. <c>Data Source=…</c> is SQLite; <c>Host=…</c> is PostgreSQL. Default: a SQLite
    /// file <c>devrift.db</c> in the data directory.
    /// </summary>
    [Required]
    public string ConnectionString { get; set; } = "";

    /// <summary><c>sqlite</c> or <c>postgres</c>; inferred from the connection string when empty.</summary>
    public string? Provider { get; set; }

    /// <summary>
    /// SQLite only: concurrent write transactions are committed together by one writer, one fsync per batch instead
    /// of one per request (each still answered only once durable). Default true; PostgreSQL commits each on its own
    /// connection (the server groups WAL flushes itself).
    /// </summary>
    public bool GroupCommit { get; set; } = true;
}

public enum StorageProvider
{
    Sqlite,
    Postgres,
}

/// <summary>The database cannot serve now; callers fail closed with 503 <c>storage_unavailable</c>.</summary>
public sealed class StorageUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The storage configuration is wrong (start-up stops with this one line).</summary>
public sealed class StorageConfigurationException(string message, Exception? inner = null) : Exception(message, inner);
