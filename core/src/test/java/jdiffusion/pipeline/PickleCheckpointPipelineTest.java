package jdiffusion.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.Container;
import jdiffusion.io.DType;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.TorchSaveWriter;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * A PyTorch checkpoint generates exactly what its safetensors twin does: tiny-sd1 written as an LDM-style
 * {@code {"state_dict": ...}} .ckpt (zip and legacy containers, as {@code tiny-sd1-subset*.ckpt} are, but with every
 * tensor), fp16 storages kept 16-bit (zip) and an fp32 twin (legacy), through the whole txt2img pipeline of the Euler golden cases;
 * the latents must be bit-identical to the safetensors run and within the golden's tolerance.
 */
class PickleCheckpointPipelineTest {
    @org.junit.jupiter.api.AfterAll
    static void cleanUp() throws java.io.IOException {
        PipelineGoldenTest.cleanUp(); // the fp32 copies it wrote for this class
    }
    @TempDir
    static Path tmp;

    @TestFactory
    Stream<DynamicTest> ckptTwinsGenerateTheSameLatents() {
        List<DynamicTest> tests = new ArrayList<>();
        for (Path manifest : Golden.manifests("pipe_sd1_txt2img_euler")) {
            JsonNode p = PipeGolden.json(manifest).path("params");
            if (!p.path("scheduler_class").asText().equals("EulerDiscreteScheduler") || !p.path("lora").isMissingNode()) {
                continue;
            }
            // both weight paths and both containers, in two runs (each also runs its safetensors twin)
            for (String dtype : List.of("fp16", "fp32")) {
                boolean legacy = dtype.equals("fp32");
                String name = Golden.caseName(manifest) + " [" + dtype + ", " + (legacy ? "legacy" : "zip") + " .ckpt]";
                tests.add(DynamicTest.dynamicTest(name, () -> run(manifest, dtype, legacy)));
            }
        }
        return tests.stream();
    }

    private static void run(Path manifestPath, String dtype, boolean legacy) throws Exception {
        String caseName = Golden.caseName(manifestPath);
        JsonNode m = PipeGolden.json(manifestPath);
        JsonNode p = m.path("params");
        JsonNode call = p.path("call");
        Path st = PipelineGoldenTest.checkpoint(p.path("model").asText(), dtype);
        Path ckpt = tmp.resolve(st.getFileName().toString().replace(".safetensors", legacy ? "-legacy.ckpt" : ".ckpt"));
        if (!Files.exists(ckpt)) {
            try (SafeTensors src = SafeTensors.open(st)) {
                TorchSaveWriter.convert(src, ckpt, "state_dict", legacy);
            }
        }
        try (SafeTensors c = SafeTensors.open(ckpt); SafeTensors s = SafeTensors.open(st)) {
            assertEquals(legacy ? Container.TORCH_LEGACY : Container.TORCH_ZIP, c.container());
            String w = "model.diffusion_model.input_blocks.1.0.in_layers.2.weight";
            assertEquals(s.info(w).dtype(), c.info(w).dtype(), "16-bit weights stay 16-bit");
            assertEquals(dtype.equals("fp16") ? DType.F16 : DType.F32, c.info(w).dtype());
        }
        int[] hw = {p.path("size_hw").get(0).asInt(), p.path("size_hw").get(1).asInt()};
        GenerateResult[] results = new GenerateResult[2];
        Path[] models = {st, ckpt};
        for (int i = 0; i < 2; i++) {
            GenerateRequest request = GenerateRequest.builder(models[i])
                    .prompt(call.path("prompt").asText())
                    .negativePrompt(call.hasNonNull("negative_prompt") ? call.get("negative_prompt").asText() : null)
                    .steps(call.path("num_inference_steps").asInt())
                    .cfg(call.path("guidance_scale").asDouble())
                    .seed(p.path("generator_seed").asLong(100))
                    .scheduler(p.path("scheduler_config").path("timestep_spacing").asText())
                    .sampler("euler")
                    .size(hw[1], hw[0])
                    .build();
            results[i] = Pipeline.generate(request, ProgressListener.NONE, CancellationToken.none());
        }
        assertArrayEquals(results[0].latent(), results[1].latent(), caseName + ": .ckpt latents equal the safetensors run's");
        try (SafeTensors t = Golden.tensors(manifestPath)) {
            PipeGolden.check(caseName, m, t, "latents_final", results[1].latent());
        }
    }
}
