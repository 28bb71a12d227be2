using DevRift.Hsm.Bench.Driver;

// bench/http/run.sh calls one command per invocation; see bench/http/README.md.
var (command, options) = Options.Parse(args);
try
{
    return command switch
    {
        "enrol" => await Enrolment.RunAsync(options),
        "codes" => TotpCodes.Run(options),
        "email-codes" => await EmailCodes.RunAsync(options),
        "report" => Report.Run(options),
        _ => Usage(),
    };
}
catch (DriverException e)
{
    await Console.Error.WriteLineAsync($"driver: {e.Message}");
    return 2;
}

static int Usage()
{
    Console.Error.WriteLine("""
        usage: driver enrol --url URL --key-file F --from A --to B --secrets F [--concurrency 32] [--pid PID] [--max-rss-mb M] [--timeout-s S]
               driver codes --secrets F --step S --out F [--wrong]
               driver email-codes --url URL --key-file F --tag T --issued N0,N1,... --out F [--concurrency 32]
               driver report --results F
        """);
    return 2;
}
