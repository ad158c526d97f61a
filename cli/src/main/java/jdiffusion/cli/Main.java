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
        System.exit(run(args));
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
