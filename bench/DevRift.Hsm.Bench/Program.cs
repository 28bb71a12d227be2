using BenchmarkDotNet.Running;
using DevRift.Hsm.Bench;

// `--count-calls [FILE]` (see bench/count-calls.sh) counts the PKCS#11 calls behind each benchmarked operation;
// everything else is BenchmarkDotNet's command line.
if (args is ["--count-calls", .. var rest])
{
    return CallCounts.Run(rest);
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
