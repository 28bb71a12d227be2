using System.CommandLine;
using System.CommandLine.Completions;
using System.Globalization;

namespace DevRift.Hsm.Api.Cli;

/// <summary>
/// The executable's commands on System.CommandLine: usage, help (<c>--help</c>, <c>-h</c>, <c>help [COMMAND]</c>),
/// <c>--version</c>, argument checks and completions (the <c>[suggest]</c> directive that <c>dotnet-suggest</c> uses).
/// Parsing only decides which command runs and with which words; <see cref="OperatorCommands"/> and the host do the
/// work, so the output of every command is what it always was. Configuration (<c>--Section:Key=value</c>) never
/// reaches this parser.
/// </summary>
public static class CommandTree
{
    /// <summary>What the command line asks for: a command's words, or nothing more to do (help or version printed, or a usage error).</summary>
    public sealed record Parsed(string[]? Words, int ExitCode);

    private static readonly string[] s_purposes = ["seed-kek", "code", "lookup", "seal", "audit"];

    public static Parsed Parse(IReadOnlyList<string> words, TextWriter stdout, TextWriter stderr)
    {
        ArgumentNullException.ThrowIfNull(words);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        string[]? selected = null;
        var root = Build(w => selected = w);
        var configuration = new ParserConfiguration { ResponseFileTokenReplacer = null };
        var result = root.Parse(words, configuration);
        if (result.Errors.Count > 0)
        {
            stderr.WriteLine($"devrift: invalid_request: usage: {Usage(result.CommandResult.Command)}; {Problems(result)}");
            return new Parsed(null, 1);
        }

        var exit = result.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false });
        return new Parsed(selected, exit);
    }

    /// <summary>One line: every missing argument by name, then the parser's other complaints.</summary>
    private static string Problems(ParseResult result)
    {
        var command = result.CommandResult.Command;
        var missing = command.Arguments
            .Where(a => a.Arity.MinimumNumberOfValues > 0 && (result.GetResult(a) is null || result.GetResult(a)!.Tokens.Count == 0))
            .Select(a => $"{a.HelpName ?? a.Name} is missing")
            .ToList();
        var others = result.Errors
            .Where(e => missing.Count == 0 || !e.Message.StartsWith("Required argument missing", StringComparison.Ordinal))
            .Select(e => e.Message.StartsWith("Required command was not provided", StringComparison.Ordinal)
                ? $"name one of: {string.Join(", ", command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name))}"
                : e.Message.TrimEnd('.'));
        return string.Join("; ", missing.Concat(others).Distinct(StringComparer.Ordinal));
    }

    /// <summary>The usage of a command: its words and arguments, or each of its subcommands' usages.</summary>
    public static string Usage(Command command)
    {
        ArgumentNullException.ThrowIfNull(command);
        var subcommands = command.Subcommands.Where(c => !c.Hidden).ToList();
        if (command is RootCommand)
        {
            return "devrift [COMMAND] [--Section:Key=value …] (COMMAND: " + string.Join(", ", subcommands.Select(c => c.Name)) + "; devrift help COMMAND for more)";
        }

        if (subcommands.Count > 0)
        {
            return string.Join(" | ", subcommands.Select(Usage));
        }

        var path = string.Join(' ', command.Parents.OfType<Command>().Where(c => c is not RootCommand).Reverse().Select(c => c.Name).Append(command.Name));
        return string.Join(' ', command.Arguments.Select(Shown).Prepend(path));
    }

    private static string Shown(Argument argument)
    {
        var name = argument.HelpName ?? argument.Name;
        return (argument.Arity.MinimumNumberOfValues, argument.Arity.MaximumNumberOfValues) switch
        {
            (0, 1) => $"[{name}]",
            (0, _) => $"[{name} …]",
            (_, > 1) => $"{name} …",
            _ => name,
        };
    }

    private static RootCommand Build(Action<string[]> select)
    {
        var root = new RootCommand(
            "DevRift.Hsm: a self-hosted MFA verification appliance whose secrets live in a PKCS#11 HSM. Without a command it serves. " +
            "Configuration follows the commands as --Section:Key=value (e.g. --Hsm:SessionPoolSize=16, --urls=http://127.0.0.1:8080); " +
            "an unknown or mistyped key stops start-up with one line.");
        root.SetAction(_ => select(["serve"]));

        var serve = new Command("serve", "Run the HTTP API (the default command). Needs an initialised token and database: run init first.");
        serve.SetAction(_ => select(["serve"]));
        root.Add(serve);

        var init = new Command("init", "Create the HSM keys and the database schema; on an empty database also a demo application, a test key and an operator token (shown once). " +
            "On an existing install, --Init:OperatorToken=true mints a new operator token (the way back in when every token is lost; needs the HSM PIN, audited).");
        init.SetAction(_ => select(["init"]));
        root.Add(init);

        var help = new Command("help", "Show help for the executable or for one command.");
        var topic = new Argument<string[]>("COMMAND") { Arity = ArgumentArity.ZeroOrMore, Description = "a command, e.g. api-keys create" };
        help.Add(topic);
        help.SetAction(r => Build(_ => { }).Parse([.. r.GetValue(topic) ?? [], "--help"]).Invoke(r.InvocationConfiguration));
        root.Add(help);

        root.Add(Group("applications", "Applications (the integrators that hold API keys).",
            Leaf("list", "List applications.", select),
            Leaf("create", "Create an application.", select, Arg("NAME", "its name"), Arg("PLAN", "standard (default) or enterprise", optional: true, "standard", "enterprise")),
            Leaf("rename", "Rename an application.", select, Arg("APP", "application id (app_…)"), Arg("NAME", "its new name"))));
        root.Add(Group("settings", "An application's settings (the names and ranges of API.md).",
            Leaf("get", "Show an application's settings.", select, Arg("APP", "application id (app_…)")),
            Leaf("set", "Change settings, each name=value (JSON values: name=[\"EMAIL\"], name=6).", select, Arg("APP", "application id (app_…)"),
                new Argument<string[]>("NAME=VALUE") { Arity = ArgumentArity.OneOrMore, Description = "settings to change" })));
        root.Add(Group("api-keys", "API keys of an application.",
            Leaf("list", "List an application's keys (never their secrets).", select, Arg("APP", "application id (app_…)")),
            Leaf("create", "Create a key; its secret is printed once.", select, Arg("APP", "application id (app_…)"), Arg("MODE", "test or live", optional: false, "test", "live"),
                Arg("LABEL", "what the key is for", optional: true)),
            Leaf("roll", "Replace a key: a new secret now (printed once); the old key works until the overlap ends.", select, Arg("APP", "application id (app_…)"),
                Arg("KEY_ID", "key id (ak_…)"), Arg("OVERLAP_SECONDS", "how long the old key keeps working (default 3600)", optional: true)),
            Leaf("label", "Set (or, without LABEL, clear) a key's label.", select, Arg("APP", "application id (app_…)"), Arg("KEY_ID", "key id (ak_…)"),
                Arg("LABEL", "the label", optional: true)),
            Leaf("revoke", "Revoke a key; it fails from its next request.", select, Arg("APP", "application id (app_…)"), Arg("KEY_ID", "key id (ak_…)"))));
        root.Add(Group("operator-tokens", "Operator tokens (adm_…) for /admin/v1 and the dashboard.",
            Leaf("list", "List tokens: id, label, created, last used, revoked (never their secrets).", select),
            Leaf("create", "Create a token; its secret is printed once.", select, Arg("LABEL", "who or what holds it")),
            Leaf("revoke", "Revoke a token; it is refused from its next request.", select, Arg("TOKEN_ID", "token id (op_…)"))));
        root.Add(Group("fraud-guard", "An application's fraud guard (SMS pumping and toll fraud).",
            Leaf("show", "Show its mode, rules, the shipped high-cost ranges and the counts of blocked and would-block sends.", select, Arg("APP", "application id (app_…)"))));
        root.Add(Group("test-messages", "The test outbox of an application.",
            Leaf("purge", "Delete every test-mode message of an application.", select, Arg("APP", "application id (app_…)"))));
        root.Add(Group("audit", "The HSM-chained audit log.",
            Leaf("list", "List records after a sequence number.", select,
                new Argument<long?>("AFTER") { Arity = ArgumentArity.ZeroOrOne, Description = "list records after this seq (default 0)" },
                new Argument<int?>("LIMIT") { Arity = ArgumentArity.ZeroOrOne, Description = "at most this many records (default 100)" }),
            Leaf("verify", "Recompute the chain; exit code 0 when valid, 2 when not.", select)));
        root.Add(Group("client-certificates", "Client certificates registered on an application (mutual TLS).",
            Leaf("list", "List an application's certificates.", select, Arg("APP", "application id (app_…)")),
            Leaf("add", "Register a certificate by PEM file or SHA-256 thumbprint.", select, Arg("APP", "application id (app_…)"),
                new Argument<string>("VALUE") { HelpName = "FILE.pem|SHA256_THUMBPRINT", Description = "a PEM file or a thumbprint" }),
            Leaf("remove", "Remove a registration.", select, Arg("APP", "application id (app_…)"), Arg("CERT_ID", "registration id (cc_…)"))));
        root.Add(Group("event-endpoint", "Where an application's signed events go (README: Events).",
            Leaf("get", "Show the endpoint: URL and event filter (never its secret).", select, Arg("APP", "application id (app_…)")),
            Leaf("set", "Create or change the endpoint; a new endpoint's signing secret is printed once.", select, Arg("APP", "application id (app_…)"),
                Arg("URL", "an absolute http:// or https:// URL"),
                new Argument<string[]>("EVENT") { Arity = ArgumentArity.ZeroOrMore, Description = "only these event types (all when none)" }),
            Leaf("remove", "Remove the endpoint; no further events are stored.", select, Arg("APP", "application id (app_…)")),
            Leaf("rotate-secret", "Replace the signing secret (printed once).", select, Arg("APP", "application id (app_…)"))));
        root.Add(Group("hsm", "The HSM keys: versions, rotation and retirement.",
            Leaf("status", "Key versions and the rows that depend on each.", select),
            Leaf("rotate", "Create the next version of a purpose's key.", select, Arg("PURPOSE", string.Join(", ", s_purposes), optional: false, s_purposes)),
            Leaf("retire", "Destroy an old version nothing depends on.", select, Arg("PURPOSE", string.Join(", ", s_purposes), optional: false, s_purposes),
                new Argument<int>("VERSION") { Description = "the version to destroy, e.g. 1" })));
        return root;
    }

    private static Command Group(string name, string description, params Command[] subcommands)
    {
        var group = new Command(name, description);
        foreach (var subcommand in subcommands)
        {
            group.Add(subcommand);
        }

        return group;
    }

    /// <summary>A command whose action selects its words: its path, then each argument's value as given.</summary>
    private static Command Leaf(string name, string description, Action<string[]> select, params Argument[] arguments)
    {
        var command = new Command(name, description);
        foreach (var argument in arguments)
        {
            command.Add(argument);
        }

        command.SetAction(result =>
        {
            var words = new List<string>();
            for (var c = result.CommandResult; c is not null && c.Command is not RootCommand; c = c.Parent as System.CommandLine.Parsing.CommandResult)
            {
                words.Insert(0, c.Command.Name);
            }

            foreach (var argument in arguments)
            {
                words.AddRange(Values(result.GetResult(argument)?.GetValueOrDefault<object?>()));
            }

            select([.. words]);
        });
        return command;
    }

    private static string[] Values(object? value) => value switch
    {
        null => [],
        string s => [s],
        string[] many => many,
        IFormattable f => [f.ToString(null, CultureInfo.InvariantCulture)],
        _ => [value.ToString() ?? ""],
    };

    private static Argument<string> Arg(string name, string description, bool optional = false, params string[] completions)
    {
        var argument = new Argument<string>(name) { HelpName = name, Description = description, Arity = optional ? ArgumentArity.ZeroOrOne : ArgumentArity.ExactlyOne };
        if (completions.Length > 0)
        {
            argument.CompletionSources.Add(completions);
        }

        return argument;
    }
}
