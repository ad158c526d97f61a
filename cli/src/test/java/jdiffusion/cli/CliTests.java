package jdiffusion.cli;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/** What the command tests share: {@link Main#run} in-process with stdout and stderr captured, and the golden folder. */
final class CliTests {
    private CliTests() {
    }

    /** A finished command: exit code and everything it printed. */
    record Result(int code, String out, String err) {
    }

    /** Runs the CLI with these arguments, capturing System.out and System.err (restored afterwards). */
    static Result run(String... args) {
        PrintStream oldOut = System.out;
        PrintStream oldErr = System.err;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        try {
            System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
            System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
            int code = Main.run(args);
            return new Result(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(oldOut);
            System.setErr(oldErr);
        }
    }

    /** The golden folder: JDIFFUSION_GOLDEN, else shared/golden beside the repository root (jdiffusion.root). */
    static Path golden() {
        String env = System.getenv("JDIFFUSION_GOLDEN");
        if (env != null && !env.isBlank()) {
            return Path.of(env);
        }
        String root = System.getProperty("jdiffusion.root", System.getProperty("user.dir") + "/..");
        return Path.of(root).resolve("../shared/golden").normalize();
    }
}
