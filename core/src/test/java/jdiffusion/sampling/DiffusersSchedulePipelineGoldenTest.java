package jdiffusion.sampling;

import static jdiffusion.sampling.DiffusersScheduleCases.assertVector;
import static jdiffusion.sampling.DiffusersScheduleCases.schedule;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import com.fasterxml.jackson.databind.JsonNode;
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
            JsonNode p = Golden.json(manifest).path("params"); // Golden reads -Infinity (DPM-Solver's lambda_min_clipped)
            if (!p.has("scheduler_class")) {
                continue; // ComfyUI cases: KSampler schedules, tested elsewhere
            }
            tests.add(DynamicTest.dynamicTest(Golden.caseName(manifest), () -> check(p)));
        }
        return tests;
    }

    private static void check(JsonNode p) {
        JsonNode config = p.path("scheduler_config");
        JsonNode call = p.path("call");
        int steps = call.path("num_inference_steps").asInt();
        Spacing spacing = Spacing.byName(config.path("timestep_spacing").asText());
        assertNotNull(spacing, "spacing " + config.path("timestep_spacing"));
        boolean karras = config.path("use_karras_sigmas").asBoolean(false);
        Schedule s = schedule(p.path("scheduler_class").asText(), steps, spacing, karras, "this pipeline case");
        assertVector("timesteps_used", p.path("timesteps_used"), s.timesteps(), 1e-4, 0);
        if (p.path("sigmas").isArray()) {
            assertVector("sigmas", p.path("sigmas"), s.sigmas(), 0, 1e-5);
        }
        double init = p.path("init_noise_sigma").asDouble();
        assertEquals(init, s.initNoiseSigma(), 1e-6 * init, "init_noise_sigma");
        Schedule run = call.has("strength") ? s.strength(call.path("strength").asDouble()) : s;
        assertVector("unet_call_timesteps", p.path("unet_call_timesteps"), run.timesteps(), 1e-4, 0);
    }
}
