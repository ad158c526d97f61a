package jdiffusion.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import picocli.CommandLine;

/**
 * Every command's and subcommand's --help prints its usage cleanly: a stray '%' in a description (picocli formats
 * descriptions with String.format) once made `generate --help` print three "[picocli WARN] Could not format" lines.
 */
class HelpTextTest {
    @TestFactory
    Stream<DynamicTest> everyHelpPrintsWithoutPicocliWarnings() {
        List<List<String>> paths = new ArrayList<>();
        collect(new CommandLine(new Main()), new ArrayList<>(), paths);
        assertTrue(paths.size() > 10, "commands found: " + paths);
        return paths.stream().map(path -> DynamicTest.dynamicTest(String.join(" ", path) + " --help", () -> {
            List<String> args = new ArrayList<>(path);
            args.add("--help");
            CliTests.Result r = CliTests.run(args.toArray(String[]::new));
            assertEquals(0, r.code(), r.err());
            assertTrue(r.out().contains("Usage:"), r.out());
            assertFalse(r.out().contains("picocli WARN") || r.err().contains("picocli WARN"), r.err() + r.out());
        }));
    }

    private static void collect(CommandLine cl, List<String> path, List<List<String>> into) {
        if (!path.isEmpty()) {
            into.add(List.copyOf(path));
        }
        cl.getSubcommands().forEach((name, sub) -> {
            if (sub.getCommandName().equals(name)) { // aliases are the same command
                path.add(name);
                collect(sub, path, into);
                path.removeLast();
            }
        });
    }
}
