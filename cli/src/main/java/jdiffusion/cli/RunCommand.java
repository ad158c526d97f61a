package jdiffusion.cli;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import jdiffusion.tensor.Parallel;
import jdiffusion.workflow.ExecutionListener;
import jdiffusion.workflow.ModelPaths;
import jdiffusion.workflow.Prompt;
import jdiffusion.workflow.WorkflowEngine;
import jdiffusion.workflow.WorkflowEngine.ExecutionResult;
import jdiffusion.workflow.WorkflowException;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code jdiffusion run WORKFLOW.json}: validates and executes a ComfyUI API-format workflow without a server. */
@Command(name = "run", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Run a ComfyUI workflow in API format (Workflow > Export (API) in ComfyUI).",
            "Model names are looked up under BASE/models/{checkpoints,loras,vae,diffusion_models}; images are read"
                    + " from BASE/input and saved to BASE/output."})
public final class RunCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "WORKFLOW.json", description = "the workflow (API format)")
    Path workflow;

    @Option(names = "--base-dir", paramLabel = "DIR", description = "ComfyUI-style base folder (default: current)")
    Path baseDir = Path.of(".");

    @Option(names = "--extra-model-paths", paramLabel = "FILE",
            description = "extra_model_paths.yaml (or JSON of the same shape) pointing at other model folders")
    Path extraPaths;

    @Option(names = "--memory-budget", paramLabel = "GiB", description = "loaded-model budget (default: 8)")
    double budgetGiB = 8;

    @Option(names = {"-t", "--threads"}, paramLabel = "N", description = "worker threads (default: all cores)")
    Integer threads;

    @Override
    public Integer call() {
        if (threads != null && Parallel.threadsProblem(threads) != null) {
            throw new CliException("--" + Parallel.threadsProblem(threads));
        }
        if (!Files.isRegularFile(workflow)) {
            String problem = jdiffusion.io.RegularFiles.problem(workflow);
            throw new CliException("workflow file " + (problem == null || problem.equals("file not found")
                    ? "not found: " + workflow : workflow + ": " + problem));
        }
        if (threads != null) {
            Parallel.setThreads(threads);
        }
        PrintStream out = System.out;
        try {
            ModelPaths paths = ModelPaths.of(baseDir);
            if (extraPaths != null) {
                paths = paths.withExtraPaths(extraPaths);
            }
            Prompt prompt = Prompt.read(workflow);
            try (WorkflowEngine engine = new WorkflowEngine(paths, (long) (budgetGiB * (1L << 30)))) {
                ExecutionResult r = engine.execute(prompt, null, null, new Printer(out, prompt));
                return report(r, paths, out);
            }
        } catch (WorkflowException e) {
            throw new CliException(e.getMessage());
        }
    }

    private static int report(ExecutionResult r, ModelPaths paths, PrintStream out) {
        switch (r.status()) {
            case INVALID -> throw new CliException("invalid workflow: " + r.message().replace("\n", "; ")
                    + " (model files are looked up under " + paths.base().resolve("models") + ", images under "
                    + paths.inputDir() + ")");
            case ERROR -> throw new CliException(r.message(), 1);
            case INTERRUPTED -> throw new CliException("interrupted at node " + r.errorNode(), 130);
            case SUCCESS -> {
                if (!r.validation().nodeErrors().isEmpty()) {
                    out.println("skipped outputs that failed validation:\n" + r.validation().describe());
                }
                for (var e : r.outputs().entrySet()) {
                    Object images = e.getValue().get("images");
                    if (images instanceof List<?> list) {
                        for (Object o : list) {
                            Map<?, ?> m = (Map<?, ?>) o;
                            Path root = "temp".equals(m.get("type")) ? paths.tempDir() : paths.outputDir();
                            String sub = (String) m.get("subfolder");
                            Path file = (sub == null || sub.isEmpty() ? root : root.resolve(sub))
                                    .resolve((String) m.get("filename"));
                            out.println("saved " + file);
                        }
                    }
                }
            }
        }
        return 0;
    }

    /** Plain progress lines: which node runs, sampler steps, what came from the cache. */
    private record Printer(PrintStream out, Prompt prompt) implements ExecutionListener {
        @Override
        public void executionCached(String promptId, List<String> nodeIds) {
            if (!nodeIds.isEmpty()) {
                out.println("cached: " + String.join(", ", nodeIds));
            }
        }

        @Override
        public void executing(String promptId, String nodeId) {
            if (nodeId != null) {
                out.println("node " + nodeId + " " + prompt.nodes().get(nodeId).classType());
            }
        }

        @Override
        public void progress(String promptId, String nodeId, int value, int max, float[] latent, int[] shape) {
            out.println("  step " + value + "/" + max);
        }
    }
}
