package jdiffusion.cli;

import java.io.PrintWriter;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The jdiffusion command line. Each subcommand is its own class, a thin layer over the core library. */
@Command(name = "jdiffusion", mixinStandardHelpOptions = true, version = "jdiffusion 0.1.0",
        description = "Stable Diffusion on the JVM.",
        subcommands = {
            CommandLine.HelpCommand.class,
            SamplersCommand.class,
            InfoCommand.class,
            DevCommand.class,
            TokenizeCommand.class,
            GenerateCommand.class,
            BenchCommand.class,
            RunCommand.class,
            ServeCommand.class,
            UpscaleCommand.class,
        })
public final class Main implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    public static void main(String[] args) {
        applySoftMaxHeap(System.getProperty("jdiffusion.softMaxHeap"));
        System.exit(run(args));
    }

    /**
     * Sets ZGC's soft heap limit to the wanted size (e.g. "2g", from the launcher) or the effective maximum heap when
     * that is smaller, so -Xmx1g and small containers start. Returns the bytes set, or -1 when nothing was set.
     */
    static long applySoftMaxHeap(String wanted) {
        if (wanted == null || wanted.isBlank()) {
            return -1;
        }
        long bytes = softMaxHeap(parseSize(wanted), Runtime.getRuntime().maxMemory());
        try {
            java.lang.management.ManagementFactory.getPlatformMXBean(com.sun.management.HotSpotDiagnosticMXBean.class)
                    .setVMOption("SoftMaxHeapSize", Long.toString(bytes));
            return bytes;
        } catch (RuntimeException e) {
            return -1; // not a HotSpot JVM, or the flag is not manageable there: the default applies
        }
    }

    /** The soft limit: the wanted size, at most the maximum heap. */
    static long softMaxHeap(long wanted, long maxHeap) {
        return Math.max(1, Math.min(wanted, maxHeap));
    }

    /** "2g", "512m", "65536k" or bytes. */
    static long parseSize(String s) {
        String t = s.strip().toLowerCase(java.util.Locale.ROOT);
        long unit = switch (t.charAt(t.length() - 1)) {
            case 'k' -> 1L << 10;
            case 'm' -> 1L << 20;
            case 'g' -> 1L << 30;
            case 't' -> 1L << 40;
            default -> 1;
        };
        return Long.parseLong(unit == 1 ? t : t.substring(0, t.length() - 1)) * unit;
    }

    /** Runs the CLI and returns the exit code; errors become one line on stderr, never a stack trace. */
    public static int run(String... args) {
        CommandLine cl = new CommandLine(new Main());
        cl.setExecutionExceptionHandler((ex, cmd, parsed) -> {
            PrintWriter err = cmd.getErr();
            String msg = ex.getMessage() == null ? ex.toString() : ex.getMessage();
            err.println("jdiffusion: error: " + msg);
            if (System.getenv("JDIFFUSION_DEBUG") != null) {
                ex.printStackTrace(err);
            }
            err.flush();
            return ex instanceof CliException ce ? ce.exitCode() : 1;
        });
        // a mistyped flag or value is one line too, with where to look, not the whole usage text
        cl.setParameterExceptionHandler((ex, badArgs) -> {
            PrintWriter err = ex.getCommandLine().getErr();
            err.println("jdiffusion: error: " + ex.getMessage() + " (see: jdiffusion "
                    + ex.getCommandLine().getCommandName() + " --help)");
            err.flush();
            return 2;
        });
        return cl.execute(args);
    }
}
