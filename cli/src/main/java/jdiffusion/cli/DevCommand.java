package jdiffusion.cli;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import jdiffusion.io.CheckpointKeys;
import jdiffusion.io.DType;
import jdiffusion.io.RandomCheckpoint;
import jdiffusion.model.ModelConfig;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** Developer tools: {@code jdiffusion dev random-checkpoint}. */
@Command(name = "dev", mixinStandardHelpOptions = true, description = "Developer tools (test files, diagnostics).",
        subcommands = {DevCommand.RandomCheckpointCommand.class, LoadTestCommand.class})
public final class DevCommand implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    /** A full-size checkpoint with random weights in the real key layout, for benchmarks and memory tests. */
    @Command(name = "random-checkpoint", mixinStandardHelpOptions = true,
            description = "Write a full-size checkpoint with random weights (std 0.02, norm scales 1) in the real key layout.")
    static final class RandomCheckpointCommand implements Callable<Integer> {
        @Option(names = "--arch", required = true, paramLabel = "ARCH", description = "sd15, sd21, sdxl, sd35m (SD3.5 Medium), sd35l (SD3.5 Large), sd3m, or an SD3 text encoder file:"
                + " clip-l, clip-g, t5xxl")
        String arch;

        @Option(names = {"-o", "--output"}, required = true, paramLabel = "FILE", description = "the .safetensors file to write (must not exist)")
        Path output;

        @Option(names = "--dtype", paramLabel = "TYPE", defaultValue = "f16",
                description = "f16 (default), bf16, f32, or f8 (float8 e4m3fn, text encoders only: t5xxl_fp8_e4m3fn)")
        String dtype;

        @Option(names = "--seed", paramLabel = "N", defaultValue = "0", description = "random seed (default 0)")
        long seed;

        @Override
        public Integer call() throws Exception {
            if (jdiffusion.model.mmdit.Sd3Keys.isPreset(arch.toLowerCase(Locale.ROOT))) {
                return sd3();
            }
            if (jdiffusion.model.mmdit.Sd3Keys.TEXT_ENCODER_FILES.contains(arch.toLowerCase(Locale.ROOT))) {
                return textEncoder();
            }
            ModelConfig config;
            try {
                config = ModelConfig.preset(arch.toLowerCase(Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw new CliException("--arch: " + e.getMessage());
            }
            DType type = switch (dtype.toLowerCase(Locale.ROOT)) {
                case "f16", "fp16", "float16" -> DType.F16;
                case "bf16", "bfloat16" -> DType.BF16;
                case "f32", "fp32", "float32" -> DType.F32;
                default -> throw new CliException("--dtype: unknown type '" + dtype + "' (known: f16, bf16, f32)");
            };
            if (Files.exists(output)) {
                throw new CliException(output + ": already exists (refusing to overwrite)");
            }
            var specs = CheckpointKeys.of(config);
            long params = specs.stream().filter(t -> t.init() != CheckpointKeys.Init.POSITION_IDS)
                    .mapToLong(CheckpointKeys.TensorSpec::numel).sum();
            System.err.printf(Locale.ROOT, "writing %s: %s, %d tensors, %,d parameters as %s (%s)...%n", output,
                    config.family(), specs.size(), params, type, InfoCommand.size(params * type.size()));
            long t0 = System.nanoTime();
            RandomCheckpoint.write(config, output, type, seed);
            System.err.printf(Locale.ROOT, "done in %.1f s%n", (System.nanoTime() - t0) / 1e9);
            return 0;
        }

        /** An SD3 / SD3.5 file in Stability's layout: MMDiT and VAE (no text encoders, as sd3.5_medium.safetensors). */
        private Integer sd3() throws Exception {
            String a = arch.toLowerCase(Locale.ROOT);
            var mmdit = jdiffusion.model.mmdit.Sd3Keys.preset(a);
            DType type = dtype();
            if (type == DType.F8_E4M3) {
                throw new CliException("--dtype f8 is for text encoder files (clip-l, clip-g, t5xxl)");
            }
            if (Files.exists(output)) {
                throw new CliException(output + ": already exists (refusing to overwrite)");
            }
            var specs = jdiffusion.model.mmdit.Sd3Keys.checkpoint(mmdit);
            long params = specs.stream().mapToLong(CheckpointKeys.TensorSpec::numel).sum();
            System.err.printf(Locale.ROOT, "writing %s: %s, %d tensors, %,d parameters (MMDiT %,d) as %s (%s)...%n",
                    output, mmdit.variant(), specs.size(), params, jdiffusion.model.mmdit.Sd3Keys.parameters(mmdit),
                    type, InfoCommand.size(params * type.size()));
            long t0 = System.nanoTime();
            RandomCheckpoint.write(specs, "SD3 " + a, output, type, seed);
            System.err.printf(Locale.ROOT, "done in %.1f s%n", (System.nanoTime() - t0) / 1e9);
            return 0;
        }

        /** A separate SD3 text encoder file (HF names, as ComfyUI's models/text_encoders holds them). */
        private Integer textEncoder() throws Exception {
            String a = arch.toLowerCase(Locale.ROOT);
            DType type = dtype();
            if (Files.exists(output)) {
                throw new CliException(output + ": already exists (refusing to overwrite)");
            }
            var specs = jdiffusion.model.mmdit.Sd3Keys.textEncoder(a);
            long params = specs.stream().mapToLong(CheckpointKeys.TensorSpec::numel).sum();
            System.err.printf(Locale.ROOT, "writing %s: %s text encoder, %d tensors, %,d parameters as %s (%s)...%n",
                    output, a, specs.size(), params, type, InfoCommand.size(params * type.size()));
            long t0 = System.nanoTime();
            RandomCheckpoint.write(specs, "SD3 text encoder " + a, output, type, seed);
            System.err.printf(Locale.ROOT, "done in %.1f s%n", (System.nanoTime() - t0) / 1e9);
            return 0;
        }

        private DType dtype() {
            return switch (dtype.toLowerCase(Locale.ROOT)) {
                case "f16", "fp16", "float16" -> DType.F16;
                case "bf16", "bfloat16" -> DType.BF16;
                case "f32", "fp32", "float32" -> DType.F32;
                case "f8", "fp8", "f8_e4m3", "fp8_e4m3fn", "float8_e4m3fn" -> DType.F8_E4M3;
                default -> throw new CliException("--dtype: unknown type '" + dtype + "' (known: f16, bf16, f32, f8)");
            };
        }
    }
}
