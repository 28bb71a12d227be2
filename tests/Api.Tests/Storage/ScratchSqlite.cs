using Dapper;
using DevRift.Hsm.Appliance.Storage;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;

namespace DevRift.Hsm.Api.Tests.Storage;

/// <summary>A fresh SQLite file in WAL mode with one table <c>t</c>, opened through <see cref="Database"/>.</summary>
internal static class ScratchSqlite
{
    public static Database NewDatabase(string purpose, string tableColumns, bool groupCommit, out string path)
    {
        var directory = Path.Combine(Path.GetTempPath(), purpose, Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(directory);
        path = Path.Combine(directory, "t.db");
        using (var c = new SqliteConnection($"Data Source={path}"))
        {
            c.Open();
            c.Execute($"PRAGMA journal_mode = WAL; CREATE TABLE t ({tableColumns})");
        }

        return new Database(Options.Create(new StorageOptions { ConnectionString = $"Data Source={path}", GroupCommit = groupCommit }));
    }
}
