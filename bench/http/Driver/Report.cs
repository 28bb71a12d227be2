using System.Globalization;
using System.Text;

namespace DevRift.Hsm.Bench.Driver;

/// <summary>
/// Turns run.sh's records (<c>results.tsv</c>: one line per wrk run, enrolment, memory sample or spy count, as
/// <c>key=value</c> fields) and its <c>facts.txt</c> into the markdown report, printed on standard output.
/// Each ratio is the median of the per-round ratios appliance ÷ baseline, each pair measured back to back.
/// </summary>
internal static class Report
{
    private static readonly CultureInfo s_inv = CultureInfo.InvariantCulture;

    private static readonly int[] s_connections = [1, 32];

    private static readonly string[] s_databases = ["sqlite", "postgres"];

    private static readonly (string Id, string Text)[] s_scenarios =
    [
        ("verify-app", "POST /v1/mfa/verify Type=APP, valid current-step code, each user once"),
        ("wrong-app", "POST /v1/mfa/verify Type=APP, wrong code"),
        ("send-email", "POST /v1/mfa Type=EMAIL (test mode), distinct users"),
        ("verify-email", "POST /v1/mfa/verify Type=EMAIL, the code just sent"),
        ("factors", "GET /v1/mfa/factors?user=…"),
        ("healthz", "GET /healthz"),
    ];

    public static int Run(Options o)
    {
        var records = File.ReadLines(o.Required("results")).Select(Parse).ToList();
        var facts = File.ReadLines(o.Required("facts"))
            .Select(l => l.Split('=', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1], StringComparer.Ordinal);
        var runs = records.Where(r => r.Get("kind") == "run" && r.Get("round") is not ("0" or "spy")).ToList();
        var phases = runs.Select(r => r.Get("phase")).Distinct(StringComparer.Ordinal).ToList();
        var sizes = facts.GetValueOrDefault("sizes", "").Split(',', StringSplitOptions.RemoveEmptyEntries);
        var cells = phases.SelectMany(p => s_scenarios.SelectMany(s => s_connections.Select(c => Cell.From(runs, p, s.Id, c))))
            .Where(c => c is not null).Select(c => c!).ToList();

        var md = new StringBuilder();
        md.AppendLine("# HTTP load: the appliance against a trivial Kestrel endpoint").AppendLine();
        md.AppendLine(s_inv, $"Command: `{facts.GetValueOrDefault("command")}`, {facts.GetValueOrDefault("started")} to {facts.GetValueOrDefault("finished")}.").AppendLine();
        if (facts.GetValueOrDefault("quick") == "true")
        {
            md.AppendLine("**Quick mode** (small N, 1-second runs): a check that the harness works, not a measurement to quote.").AppendLine();
        }

        md.AppendLine(s_inv, $"Appliance measured: `src/` as of commit `{facts.GetValueOrDefault("src_commit")}` (checkout `{facts.GetValueOrDefault("commit")}`){(facts.GetValueOrDefault("src_dirty_files", "0") == "0" ? "" : $" with {facts["src_dirty_files"]} uncommitted file(s) under src/")}, Release build, SoftHSM2 token and SQLite or PostgreSQL as the phase says, default host settings.").AppendLine();
        md.AppendLine(s_inv, $"Machine: {facts.GetValueOrDefault("nproc")} cores ({facts.GetValueOrDefault("cpu")}), {facts.GetValueOrDefault("memory")}; {facts.GetValueOrDefault("os")}; .NET SDK {facts.GetValueOrDefault("dotnet")}; {facts.GetValueOrDefault("wrk")}; {facts.GetValueOrDefault("postgres")}; SoftHSM2 {facts.GetValueOrDefault("softhsm")}.").AppendLine();
        var loads = runs.SelectMany(r => new[] { r.Get("load_before"), r.Get("load_after") }).Select(l => Number(l.Split('/')[0])).Where(v => v is not null).Select(v => v!.Value).ToList();
        md.AppendLine(s_inv, $"**Load average** (1/5/15 min): {facts.GetValueOrDefault("load_start")} at the start, {facts.GetValueOrDefault("load_end")} at the end; the 1-minute value ranged {(loads.Count > 0 ? $"{loads.Min():0.00}–{loads.Max():0.00}" : "n/a")} around the measured runs (every run's is in the raw results). The machine is shared: read the ratios, each measured against the baseline back to back, rather than the absolute numbers.").AppendLine();
        md.AppendLine(s_inv, $"Each run: wrk for {facts.GetValueOrDefault("duration")} s (2 threads, or 1 at 1 connection), {facts.GetValueOrDefault("rounds")} rounds of appliance then baseline per scenario; a valid-code run ends early when every code of its pool was used once (the \"window\" column is the shortest measured window). Ratio = median over the rounds of appliance req/s ÷ baseline req/s of the same round (range in brackets). Latencies are wrk's, in ms.").AppendLine();

        Targets(md, cells, records, sizes);
        foreach (var phase in phases)
        {
            var enrolled = records.LastOrDefault(r => r.Get("kind") == "rss" && r.Get("phase") == phase && r.Get("when") == "after-enrol")?.Get("enrolled") ?? "?";
            md.AppendLine(s_inv, $"## {phase}: {enrolled} factors enrolled").AppendLine();
            md.AppendLine("| request | conns | appliance req/s | p50 | p99 | baseline req/s | baseline p99 | ratio | appliance statuses | unexpected | window s |");
            md.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |");
            foreach (var c in cells.Where(c => c.Phase == phase))
            {
                md.AppendLine(s_inv, $"| {Text(c.Scenario)} | {c.Conns} | {Range(c.App, r => r.Num("rps"), "0")} | {Median(c.App, r => r.Num("p50_us") / 1000):0.00} | {Range(c.App, r => r.Num("p99_us") / 1000, "0.0")} | {Range(c.Base, r => r.Num("rps"), "0")} | {Median(c.Base, r => r.Num("p99_us") / 1000):0.0} | {RatioText(c)} | {Statuses(c.App)} | {c.App.Sum(r => r.Num("bad") + Errors(r)):0} | {c.App.Min(r => r.Num("duration_s")):0.0} |");
            }

            md.AppendLine();
        }

        Memory(md, records);
        Pkcs11(md, records);
        md.AppendLine(s_inv, $"Raw wrk output of every run, the records this report was made from (`results.tsv`) and the run's facts: `{o.Get("raw", "bench/results/http-raw")}/`.");
        Console.Write(md.ToString());
        return 0;
    }

    private static void Targets(StringBuilder md, List<Cell> cells, List<Rec> records, string[] sizes)
    {
        md.AppendLine("## Targets of issue 10").AppendLine();
        md.AppendLine("| target | measured | |");
        md.AppendLine("| --- | --- | --- |");
        var first = sizes.FirstOrDefault() ?? "";
        var second = sizes.Skip(1).FirstOrDefault();
        Cell? Find(string db, string size, string scenario, int conns) =>
            cells.FirstOrDefault(c => c.Phase == $"{db}-{size}" && c.Scenario == scenario && c.Conns == conns);

        void Row(string target, string measured, bool? met) =>
            md.AppendLine(s_inv, $"| {target} | {measured} | {(met is null ? "not measured" : met.Value ? "**met**" : "**not met**")} |");

        void RatioRow(string target, Cell? c, double min)
        {
            var ratio = c?.Ratio();
            Row(target, ratio is null ? "—" : $"{ratio:0.000}× (range {RatioRange(c!)})", ratio is null ? null : ratio >= min);
        }

        RatioRow($"valid APP verify, 32 connections, SQLite ≥ 0.2× baseline ({first} factors)", Find("sqlite", first, "verify-app", 32), 0.2);
        RatioRow($"valid APP verify, 32 connections, PostgreSQL ≥ 0.1× baseline ({first} factors)", Find("postgres", first, "verify-app", 32), 0.1);
        foreach (var db in s_databases)
        {
            var c = Find(db, first, "verify-app", 32);
            var p99 = c is null ? (double?)null : Median(c.App, r => r.Num("p99_us") / 1000);
            Row($"valid APP verify p99 ≤ 20 ms, 32 connections, {db}", p99 is null ? "—" : $"{p99:0.0} ms (median; range {c!.App.Min(r => r.Num("p99_us")) / 1000:0.0}–{c.App.Max(r => r.Num("p99_us")) / 1000:0.0})", p99 is null ? null : p99 <= 20);
        }

        foreach (var db in s_databases)
        {
            var c = Find(db, first, "verify-app", 1);
            var p50 = c is null ? (double?)null : Median(c.App, r => r.Num("p50_us") / 1000);
            Row($"valid APP verify p50 ≤ 1 ms, 1 connection, {db}", p50 is null ? "—" : $"{p50:0.00} ms (median)", p50 is null ? null : p50 <= 1);
        }

        foreach (var db in s_databases)
        {
            RatioRow($"GET /v1/mfa/factors ≥ 0.3× baseline, 32 connections, {db}", Find(db, first, "factors", 32), 0.3);
        }

        if (second is not null)
        {
            foreach (var db in s_databases)
            {
                var small = Find(db, first, "verify-app", 32);
                var large = Find(db, second, "verify-app", 32);
                var enrolled = EnrolledAfter(records, $"{db}-{second}");
                if (small is null || large is null)
                {
                    Row($"valid APP verify at {second} factors within 1.2× of {first}, {db}", "—", null);
                    continue;
                }

                var slow = Median(small.App, r => r.Num("rps")) / Median(large.App, r => r.Num("rps"));
                var complete = enrolled >= long.Parse(second, s_inv);
                Row($"valid APP verify at {second} factors within 1.2× of {first}, {db}",
                    $"{first}: {Median(small.App, r => r.Num("rps")):0} req/s, {enrolled}: {Median(large.App, r => r.Num("rps")):0} req/s ({first} ÷ {enrolled}: {slow:0.00}×){(complete ? "" : $"; only {enrolled} of {second} enrolled")}",
                    complete ? slow <= 1.2 : false);
            }

            foreach (var db in s_databases)
            {
                var rss = records.LastOrDefault(r => r.Get("kind") == "rss" && r.Get("phase") == $"{db}-{second}" && r.Get("when") == "after-enrol");
                if (rss is null)
                {
                    Row($"RSS ≤ 400 MB after {second} enrolments served by one process, {db}", "—", null);
                    continue;
                }

                var mb = rss.Num("rss_kb") / 1024;
                var enrolled = EnrolledAfter(records, $"{db}-{second}");
                var stopped = records.LastOrDefault(r => r.Get("kind") == "enrol" && r.Get("phase") == $"{db}-{second}")?.Get("stopped") ?? "no";
                Row($"RSS ≤ 400 MB after {second} enrolments served by one process, {db}",
                    $"{mb:0} MB after {enrolled} enrolments{(stopped == "no" ? "" : $" (enrolment stopped: {stopped.Replace('_', ' ')})")}",
                    enrolled >= long.Parse(second, s_inv) && mb <= 400 ? true : false);
            }
        }

        var spy = records.LastOrDefault(r => r.Get("kind") == "pkcs11" && r.Get("scenario") == "verify-app");
        var perVerify = spy is null || spy.Num("requests") == 0 ? (double?)null : spy.Num("calls") / spy.Num("requests");
        Row("valid current-step APP verify ≤ 4 PKCS#11 calls (pkcs11-spy)", perVerify is null ? "—" : $"{perVerify:0.00} calls per request", perVerify is null ? null : perVerify <= 4);
        md.AppendLine();
    }

    private static long EnrolledAfter(List<Rec> records, string phase) =>
        (long)(records.LastOrDefault(r => r.Get("kind") == "rss" && r.Get("phase") == phase && r.Get("when") == "after-enrol")?.Num("enrolled") ?? 0);

    private static void Memory(StringBuilder md, List<Rec> records)
    {
        md.AppendLine("## Server memory and enrolment").AppendLine();
        md.AppendLine("| phase | when | factors enrolled | VmRSS MB | VmHWM (peak) MB |");
        md.AppendLine("| --- | --- | ---: | ---: | ---: |");
        foreach (var r in records.Where(r => r.Get("kind") == "rss" && r.Get("phase") != "spy"))
        {
            md.AppendLine(s_inv, $"| {r.Get("phase")} | {r.Get("when")} | {r.Get("enrolled")} | {r.Num("rss_kb") / 1024:0} | {r.Num("hwm_kb") / 1024:0} |");
        }

        md.AppendLine();
        md.AppendLine("| phase | enrolled | failed | seconds | enrolments/s (enrol + activating verify) | stopped early |");
        md.AppendLine("| --- | ---: | ---: | ---: | ---: | --- |");
        foreach (var r in records.Where(r => r.Get("kind") == "enrol" && r.Get("phase") != "spy"))
        {
            md.AppendLine(s_inv, $"| {r.Get("phase")} | {r.Get("enrolled")} | {r.Get("failed")} | {r.Get("seconds")} | {r.Get("rate")} | {r.Get("stopped").Replace('_', ' ')} |");
        }

        md.AppendLine();
    }

    private static void Pkcs11(StringBuilder md, List<Rec> records)
    {
        var spy = records.Where(r => r.Get("kind") == "pkcs11").ToList();
        if (spy.Count == 0)
        {
            return;
        }

        md.AppendLine("## PKCS#11 calls per request").AppendLine();
        md.AppendLine("A separate appliance (SQLite, 200 users) with OpenSC's pkcs11-spy in front of SoftHSM2 (`Hsm:KeyRefreshInterval=0`); 50 answered requests per scenario on one connection, counting the spy log's `C_*` calls between a mark before and after (so an idle call of the server in that window would count too; the idle line shows how many there were).").AppendLine();
        md.AppendLine("| request | requests | calls | per request | calls by function |");
        md.AppendLine("| --- | ---: | ---: | ---: | --- |");
        foreach (var r in spy)
        {
            if (r.Get("scenario") == "idle")
            {
                md.AppendLine(s_inv, $"| idle server, no requests | {r.Get("seconds")} s | {r.Get("calls")} | | |");
                continue;
            }

            var per = r.Num("requests") > 0 ? r.Num("calls") / r.Num("requests") : 0;
            md.AppendLine(s_inv, $"| {Text(r.Get("scenario"))} | {r.Get("requests")} | {r.Get("calls")} | {per:0.00} | {PerRequest(r)} |");
        }

        md.AppendLine();
    }

    private static string PerRequest(Rec r)
    {
        var n = r.Num("requests");
        return n == 0 || r.Get("breakdown") == "none" ? "" : string.Join(", ", r.Get("breakdown").Split(',').Select(p => p.Split(':'))
            .Select(p => string.Create(s_inv, $"{p[0]} {double.Parse(p[1], s_inv) / n:0.##}")));
    }

    private static string Text(string scenario) => s_scenarios.FirstOrDefault(s => s.Id == scenario).Text ?? scenario;

    private static double Errors(Rec r) =>
        r.Get("errors").Split(',').Select(p => p.Split(':')).Where(p => p.Length == 2).Sum(p => double.Parse(p[1], s_inv));

    private static string Statuses(List<Rec> runs) =>
        string.Join(" ", runs.SelectMany(r => r.Get("statuses").Split(',', StringSplitOptions.RemoveEmptyEntries))
            .Select(p => p.Split(':')).GroupBy(p => p[0]).OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => string.Create(s_inv, $"{g.Key}×{g.Sum(p => long.Parse(p[1], s_inv))}")));

    private static string RatioText(Cell c) => c.Ratio() is { } r ? string.Create(s_inv, $"**{r:0.000}** ({RatioRange(c)})") : "—";

    private static string RatioRange(Cell c)
    {
        var ratios = c.Ratios();
        return string.Create(s_inv, $"{ratios.Min():0.000}–{ratios.Max():0.000}");
    }

    private static string Range(List<Rec> runs, Func<Rec, double> value, string format)
    {
        if (runs.Count == 0)
        {
            return "—";
        }

        var values = runs.Select(value).ToList();
        return values.Count == 1
            ? values[0].ToString(format, s_inv)
            : $"{Median(runs, value).ToString(format, s_inv)} ({values.Min().ToString(format, s_inv)}–{values.Max().ToString(format, s_inv)})";
    }

    private static double Median(List<Rec> runs, Func<Rec, double> value) => Median(runs.Select(value).ToList());

    private static double Median(List<double> values)
    {
        if (values.Count == 0)
        {
            return double.NaN;
        }

        values.Sort();
        var mid = values.Count / 2;
        return values.Count % 2 == 1 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
    }

    private static double? Number(string text) =>
        double.TryParse(text, NumberStyles.Float, s_inv, out var v) ? v : null;

    private static Rec Parse(string line) =>
        new(line.Split(['\t', ' '], StringSplitOptions.RemoveEmptyEntries).Select(f => f.Split('=', 2)).Where(p => p.Length == 2)
            .GroupBy(p => p[0], StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Last()[1], StringComparer.Ordinal));

    private sealed record Rec(Dictionary<string, string> Fields)
    {
        public string Get(string name) => Fields.GetValueOrDefault(name, "");

        public double Num(string name) => Number(Get(name)) ?? 0;
    }

    /// <summary>One scenario at one connection count in one phase: the appliance's and the baseline's runs by round.</summary>
    private sealed record Cell(string Phase, string Scenario, int Conns, List<Rec> App, List<Rec> Base)
    {
        public static Cell? From(List<Rec> runs, string phase, string scenario, int conns)
        {
            var mine = runs.Where(r => r.Get("phase") == phase && r.Get("scenario") == scenario && r.Get("conns") == conns.ToString(s_inv)).ToList();
            var app = mine.Where(r => r.Get("server") == "appliance").ToList();
            return app.Count == 0 ? null : new Cell(phase, scenario, conns, app, mine.Where(r => r.Get("server") == "baseline").ToList());
        }

        public List<double> Ratios() =>
            App.Select(a => (a, b: Base.FirstOrDefault(b => b.Get("round") == a.Get("round"))))
                .Where(p => p.b is not null && p.b.Num("rps") > 0).Select(p => p.a.Num("rps") / p.b!.Num("rps")).ToList();

        public double? Ratio() => Ratios() is { Count: > 0 } r ? Median(r) : null;
    }
}
