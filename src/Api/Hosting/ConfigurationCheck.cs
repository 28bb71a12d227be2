using System.Collections;
using System.ComponentModel;
using System.Reflection;
using DevRift.Hsm.Api.Tls;
using DevRift.Hsm.Appliance.Outbox;
using DevRift.Hsm.Appliance.Storage;
using DevRift.Hsm.Crypto;
using Microsoft.Extensions.Configuration.CommandLine;
using Microsoft.Extensions.Configuration.EnvironmentVariables;
using Microsoft.Extensions.Configuration.Json;

namespace DevRift.Hsm.Api.Hosting;

/// <summary>A setting that is not known or cannot be read as its type; the message is one line and holds no value.</summary>
public sealed class ConfigurationKeyException(string message) : Exception(message);

/// <summary>
/// Every <c>Section:Key</c> given on the command line, in appsettings or in the environment (the <c>__</c> form, e.g.
/// <c>Delivery__Smtp__Password</c>) is checked against the appliance's options before anything starts: an unknown one
/// is named with the closest known key, and a value that its option's type cannot hold is named with that type.
/// The host's own keys (<c>urls</c>, <c>Logging:*</c>, <c>Kestrel:*</c>, <c>AllowedHosts</c> …) are accepted as they
/// are. Of the environment only keys under an appliance section (or a near miss of one) are checked, since the process
/// environment holds many variables that are not meant for the appliance.
/// </summary>
public static class ConfigurationCheck
{
    private const string Any = "*";

    /// <summary>Option classes and their sections; each public property is a key, its type the value's type.</summary>
    private static readonly (string Section, Type Options)[] s_options =
    [
        (HsmOptions.Section, typeof(HsmOptions)),
        (StorageOptions.Section, typeof(StorageOptions)),
        (DeliveryOptions.Section, typeof(DeliveryOptions)),
        (SmtpOptions.Section, typeof(SmtpOptions)),
        (TwilioOptions.Section, typeof(TwilioOptions)),
        (WebhookOptions.Section, typeof(WebhookOptions)),
        (DevRift.Hsm.Appliance.Events.EventOptions.Section, typeof(DevRift.Hsm.Appliance.Events.EventOptions)),
        (TlsOptions.Section, typeof(TlsOptions)),
    ];

    /// <summary>Keys read directly from configuration rather than through an options class.</summary>
    private static readonly (string Key, Type Type)[] s_single =
    [
        ("Data:Directory", typeof(string)),
        ("Demo:Enabled", typeof(bool)),
        ("Init:Demo", typeof(bool)),
        ("Init:NewDatabase", typeof(bool)),
        ("Init:OperatorToken", typeof(bool)),
    ];

    /// <summary>The host's own settings (ASP.NET Core and the generic host), accepted with any value.</summary>
    private static readonly string[] s_hostKeys =
    [
        "urls", "http_ports", "https_ports", "environment", "applicationName", "contentRoot", "webroot", "AllowedHosts",
        "detailedErrors", "captureStartupErrors", "shutdownTimeoutSeconds", "preventHostingStartup", "hostingStartupAssemblies",
        "hostingStartupExcludeAssemblies", "suppressStatusMessages", "preferHostingUrls", "startupAssembly", "https_port",
        "hostBuilder:reloadConfigOnChange",
    ];

    /// <summary>Sections owned by the host and its libraries, accepted with every key under them.</summary>
    private static readonly string[] s_hostSections = ["Logging", "Kestrel"];

    /// <summary>Sections that report their own bad values with every problem at once (delivery and TLS validators).</summary>
    private static readonly string[] s_selfValidating = [DeliveryOptions.Section, TlsOptions.Section];

    private static readonly Lazy<Dictionary<string, Type>> s_known = new(KnownKeys);

    /// <summary>Every known key (<c>*</c> for a name or index of the deployment's choosing), for help and the closest match.</summary>
    public static IReadOnlyCollection<string> Known => s_known.Value.Keys;

    /// <summary>Throws <see cref="ConfigurationKeyException"/> naming each unknown key and each value of the wrong type.</summary>
    public static void Check(IConfigurationRoot configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var problems = new List<string>();
        foreach (var provider in configuration.Providers)
        {
            var (source, environment) = provider switch
            {
                CommandLineConfigurationProvider => ("the command line", false),
                JsonConfigurationProvider json => (Path.GetFileName(json.Source.Path) ?? "appsettings", false),
                EnvironmentVariablesConfigurationProvider => ("the environment", true),
                _ => (null, false),
            };
            if (source is null)
            {
                continue;
            }

            foreach (var (key, value) in Leaves(provider, null))
            {
                if (environment && !LooksLikeAppliance(key))
                {
                    continue;
                }

                if (Problem(key, value, source) is { } problem && !problems.Contains(problem, StringComparer.Ordinal))
                {
                    problems.Add(problem);
                }
            }
        }

        if (problems.Count > 0)
        {
            throw new ConfigurationKeyException(string.Join("; ", problems));
        }
    }

    private static string? Problem(string key, string? value, string source)
    {
        var segments = key.Split(':');
        if (s_hostSections.Contains(segments[0], StringComparer.OrdinalIgnoreCase)
            || s_hostKeys.Contains(key, StringComparer.OrdinalIgnoreCase))
        {
            return null;
        }

        if (Match(segments) is not { } type)
        {
            return $"unknown setting '{key}' (from {source}); the closest known setting is '{Closest(key)}'";
        }

        if (value is null || s_selfValidating.Contains(segments[0], StringComparer.OrdinalIgnoreCase))
        {
            return null;
        }

        var target = Nullable.GetUnderlyingType(type) ?? type;
        if (target == typeof(string) || value.Length == 0)
        {
            return null;
        }

        try
        {
            _ = TypeDescriptor.GetConverter(target).ConvertFromInvariantString(value);
            return null;
        }
        catch (Exception e) when (e is FormatException or NotSupportedException or ArgumentException or OverflowException)
        {
            return $"{key} is not a valid {Describe(target)}";
        }
    }

    /// <summary>The type of a known key (segments compared without case; <c>*</c> matches any one segment).</summary>
    private static Type? Match(string[] segments)
    {
        foreach (var (known, type) in s_known.Value)
        {
            var parts = known.Split(':');
            if (parts.Length == segments.Length
                && parts.Zip(segments).All(p => p.First == Any || string.Equals(p.First, p.Second, StringComparison.OrdinalIgnoreCase)))
            {
                return type;
            }
        }

        return null;
    }

    private static string Closest(string key) =>
        s_known.Value.Keys
            .Concat(s_hostKeys)
            .MinBy(k => Quickenshtein.Levenshtein.GetDistance(key.ToLowerInvariant(), k.ToLowerInvariant()))!;

    private static bool LooksLikeAppliance(string key)
    {
        if (!key.Contains(':', StringComparison.Ordinal))
        {
            return false;
        }

        var section = key.Split(':')[0].ToLowerInvariant();
        return s_known.Value.Keys.Select(k => k.Split(':')[0].ToLowerInvariant()).Distinct()
            .Any(known => Quickenshtein.Levenshtein.GetDistance(section, known) <= (known.Length <= 4 ? 1 : 2));
    }

    private static string Describe(Type type) =>
        type == typeof(bool) ? "Boolean (true or false)"
        : type == typeof(int) || type == typeof(long) ? "whole number"
        : type == typeof(TimeSpan) ? "TimeSpan (hh:mm:ss)"
        : type.IsEnum ? $"{type.Name} ({string.Join(", ", Enum.GetNames(type))})"
        : type.Name;

    private static IEnumerable<(string Key, string? Value)> Leaves(IConfigurationProvider provider, string? parent)
    {
        foreach (var child in provider.GetChildKeys([], parent).Distinct(StringComparer.OrdinalIgnoreCase))
        {
            var path = parent is null ? child : ConfigurationPath.Combine(parent, child);
            var hasChildren = provider.GetChildKeys([], path).Any();
            if (provider.TryGet(path, out var value) || !hasChildren)
            {
                yield return (path, value);
            }

            if (hasChildren)
            {
                foreach (var leaf in Leaves(provider, path))
                {
                    yield return leaf;
                }
            }
        }
    }

    private static Dictionary<string, Type> KnownKeys()
    {
        var keys = new Dictionary<string, Type>(StringComparer.OrdinalIgnoreCase);
        foreach (var (key, type) in s_single)
        {
            keys[key] = type;
        }

        foreach (var (section, options) in s_options)
        {
            foreach (var property in options.GetProperties(BindingFlags.Public | BindingFlags.Instance))
            {
                if (!property.CanWrite && !typeof(IEnumerable).IsAssignableFrom(property.PropertyType))
                {
                    continue;
                }

                var type = property.PropertyType;
                var key = $"{section}:{property.Name}";
                if (type != typeof(string) && type.IsGenericType && typeof(IEnumerable).IsAssignableFrom(type))
                {
                    // A list or a dictionary: one entry per index or name.
                    keys[$"{key}:{Any}"] = type.GetGenericArguments()[^1];
                }
                else
                {
                    keys[key] = type;
                }
            }
        }

        return keys;
    }
}
