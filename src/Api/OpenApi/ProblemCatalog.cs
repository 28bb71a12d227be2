using System.Reflection;
using DevRift.Hsm.Api.Problems;
using DevRift.Hsm.Appliance.Errors;

namespace DevRift.Hsm.Api.OpenApi;

/// <summary>Every problem code of <see cref="ErrorCode"/> with its status, read once.</summary>
public static class ProblemCatalog
{
    public static readonly IReadOnlyList<ErrorCode> All = typeof(ErrorCode)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Where(f => f.FieldType == typeof(ErrorCode))
        .Select(f => (ErrorCode)f.GetValue(null)!)
        .ToList();

    private static readonly Dictionary<string, ErrorCode> s_byCode = All.ToDictionary(e => e.Code, StringComparer.Ordinal);

    public static ErrorCode Get(string code) =>
        s_byCode.TryGetValue(code, out var e) ? e : throw new ArgumentException($"unknown problem code '{code}'", nameof(code));

    public static bool TryGet(string code, out ErrorCode error) => s_byCode.TryGetValue(code, out error!);

    public static int StatusOf(ErrorCode error)
    {
        ArgumentNullException.ThrowIfNull(error);
        return ProblemResponses.StatusOf(error.Kind);
    }
}
