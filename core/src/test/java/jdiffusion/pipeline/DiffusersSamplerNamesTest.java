package jdiffusion.pipeline;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.SafeTensors;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * The diffusers DDIM cases reproduced by name alone ({@code --sampler ddim --scheduler <spacing>}), without the
 * explicit schedule the main golden test hands over: the pipeline's own DDIMScheduler plan (timesteps, final sigma
 * above 0, variance-preserving start and result).
 */
class DiffusersSamplerNamesTest {
    @TestFactory
    Stream<DynamicTest> ddimByName() {
        List<DynamicTest> tests = new ArrayList<>();
        for (Path manifest : Golden.manifests("pipe_")) {
            JsonNode m = PipeGolden.json(manifest);
            JsonNode p = m.path("params");
            if (!p.path("scheduler_class").asText().equals("DDIMScheduler")
                    || p.path("scheduler_config").path("set_alpha_to_one").asBoolean(false)) {
                continue;
            }
            tests.add(DynamicTest.dynamicTest(Golden.caseName(manifest), () -> {
                JsonNode call = p.path("call");
                GenerateRequest r = GenerateRequest.builder(PipelineGoldenTest.checkpoint(p.path("model").asText(),
                                "fp16"))
                        .prompt(call.path("prompt").asText())
                        .negativePrompt(call.hasNonNull("negative_prompt") ? call.get("negative_prompt").asText() : null)
                        .size(p.path("size_hw").get(1).asInt(), p.path("size_hw").get(0).asInt())
                        .steps(call.path("num_inference_steps").asInt()).cfg(call.path("guidance_scale").asDouble())
                        .seed(p.path("generator_seed").asLong(100)).sampler("ddim")
                        .scheduler(p.path("scheduler_config").path("timestep_spacing").asText()).build();
                GenerateResult res = Pipeline.generate(r, ProgressListener.NONE, CancellationToken.none());
                try (SafeTensors t = Golden.tensors(manifest)) {
                    PipeGolden.check(Golden.caseName(manifest), m, t, "latents_final", res.latent());
                    PipeGolden.check(Golden.caseName(manifest), m, t, "image01", res.image01());
                }
            }));
        }
        return tests.stream();
    }
}
