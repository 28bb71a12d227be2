using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace DevRift.Hsm.Api.V1;

/// <summary>
/// Every time on the wire in one shape: ISO 8601 UTC to the millisecond (<c>2026-06-01T12:00:00.000Z</c>), the
/// resolution the database keeps, so a time read back compares equal to the one first returned.
/// </summary>
public sealed class UtcTimeJsonConverter : JsonConverter<DateTime>
{
    private const string Format = "yyyy-MM-dd'T'HH:mm:ss.fff'Z'";

    public override DateTime Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        DateTime.Parse(reader.GetString() ?? throw new JsonException("a time is required"), CultureInfo.InvariantCulture,
            DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal);

    public override void Write(Utf8JsonWriter writer, DateTime value, JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(writer);
        var utc = value.Kind == DateTimeKind.Local ? value.ToUniversalTime() : value;
        writer.WriteStringValue(utc.ToString(Format, CultureInfo.InvariantCulture));
    }
}
