package jdiffusion.sampling;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import jdiffusion.Golden;
import jdiffusion.sampling.DiffusersSchedule.Schedule;
import jdiffusion.sampling.DiffusersSchedule.Spacing;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * The schedules the diffusers pipeline cases ran with ({@code pipe_*} manifests, not the ComfyUI ones): timesteps,
 * sigmas and init_noise_sigma from the scheduler class and config each manifest records, and for img2img the
 * timesteps the loop ran after diffusers' strength cut.
 */
class DiffusersSchedulePipelineGoldenTest {

    @TestFactory
    List<DynamicTest> pipelineSchedules() {
        List<DynamicTest> tests = new ArrayList<>();
        for (Path manifest : Golden.manifests("pipe_")) {
            JsonNode p = readJson(manifest).path("params");
            if (!p.has("scheduler_class")) {
                continue; // ComfyUI cases: KSampler schedules, tested elsewhere
            }
            tests.add(DynamicTest.dynamicTest(Golden.caseName(manifest), () -> check(p)));
        }
        return tests;
    }

    /** The DPM-Solver config records lambda_min_clipped as -Infinity, which plain JSON parsing rejects. */
    private static JsonNode readJson(Path manifest) {
        try {
            return new ObjectMapper().enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS.mappedFeature())
                    .readTree(manifest.toFile());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void check(JsonNode p) {
        JsonNode config = p.path("scheduler_config");
        JsonNode call = p.path("call");
        int steps = call.path("num_inference_steps").asInt();
        Spacing spacing = Spacing.byName(config.path("timestep_spacing").asText());
        assertNotNull(spacing, "spacing " + config.path("timestep_spacing"));
        boolean karras = config.path("use_karras_sigmas").asBoolean(false);
        Schedule s = switch (p.path("scheduler_class").asText()) {
            case "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler" ->
                    DiffusersSchedule.euler(steps, spacing, karras);
            case "HeunDiscreteScheduler" -> DiffusersSchedule.heun(steps, spacing, karras);
            case "DPMSolverMultistepScheduler" -> DiffusersSchedule.dpmSolverMultistep(steps, spacing, karras);
            case "DDIMScheduler" -> DiffusersSchedule.ddim(steps, spacing);
            default -> throw new AssertionError("scheduler " + p.path("scheduler_class"));
        };
        assertVector("timesteps_used", p.path("timesteps_used"), s.timesteps(), 1e-4, 0);
        if (p.path("sigmas").isArray()) {
            assertVector("sigmas", p.path("sigmas"), s.sigmas(), 0, 1e-5);
        }
        double init = p.path("init_noise_sigma").asDouble();
        assertEquals(init, s.initNoiseSigma(), 1e-6 * init, "init_noise_sigma");
        Schedule run = call.has("strength") ? s.strength(call.path("strength").asDouble()) : s;
        assertVector("unet_call_timesteps", p.path("unet_call_timesteps"), run.timesteps(), 1e-4, 0);
    }

    private static void assertVector(String what, JsonNode expected, double[] actual, double atol, double rtol) {
        assertEquals(expected.size(), actual.length, what + " length");
        for (int i = 0; i < actual.length; i++) {
            double e = expected.get(i).asDouble();
            if (!(Math.abs(e - actual[i]) <= atol + rtol * Math.abs(e))) {
                fail(what + "[" + i + "]: expected " + e + ", got " + actual[i]);
            }
        }
    }
}
