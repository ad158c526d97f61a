package jdiffusion.sampling;

import static jdiffusion.sampling.DiffusersScheduleCases.assertVector;
import static jdiffusion.sampling.DiffusersScheduleCases.schedule;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import jdiffusion.Golden;
import jdiffusion.io.SafeTensors;
import jdiffusion.sampling.DiffusersSchedule.Schedule;
import jdiffusion.sampling.DiffusersSchedule.Spacing;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/** Every sub-case of the golden {@code schedules} case: timesteps, sigmas and init_noise_sigma per scheduler. */
class DiffusersScheduleGoldenTest {
    private static final Path MANIFEST = Golden.dir().resolve("schedules.json");

    @TestFactory
    List<DynamicTest> everyScheduleSubCase() {
        JsonNode root = Golden.json(MANIFEST);
        double tAtol = root.path("tolerance").path("timesteps_atol").asDouble();
        double sRtol = root.path("tolerance").path("sigmas_rtol").asDouble();
        List<DynamicTest> tests = new ArrayList<>();
        for (JsonNode c : root.path("params").path("index")) {
            tests.add(DynamicTest.dynamicTest(c.path("key").asText(), () -> check(c, tAtol, sRtol)));
        }
        assertTrue(tests.size() >= 100, "schedules.json lists its sub-cases");
        return tests;
    }

    private static void check(JsonNode c, double tAtol, double sRtol) {
        String key = c.path("key").asText();
        Spacing spacing = Spacing.byName(c.path("timestep_spacing").asText());
        int steps = c.path("steps").asInt();
        boolean karras = c.path("karras").asBoolean();
        Schedule s = schedule(c.path("scheduler").asText(), steps, spacing, karras, key);
        assertVector(key + ".timesteps", c.path("timesteps"), s.timesteps(), tAtol, 0);
        if (c.has("sigmas")) {
            assertVector(key + ".sigmas", c.path("sigmas"), s.sigmas(), 0, sRtol);
        }
        double init = c.path("init_noise_sigma").asDouble();
        assertEquals(init, s.initNoiseSigma(), 1e-6 * init, key + ".init_noise_sigma");
    }

    @Test
    void trainingTablesMatchDiffusers() throws Exception {
        JsonNode outputs = Golden.json(MANIFEST).path("outputs");
        try (SafeTensors st = SafeTensors.open(MANIFEST.resolveSibling("schedules.safetensors"))) {
            float[] acp = st.floats(outputs.path("alphas_cumprod").path("tensor").asText());
            float[] betas = st.floats(outputs.path("betas").path("tensor").asText());
            double rtol = outputs.path("alphas_cumprod").path("tolerance").path("rtol").asDouble(1e-6);
            float[] myAcp = DiffusersSchedule.alphasCumprod();
            float[] myBetas = DiffusersSchedule.betas();
            for (int i = 0; i < acp.length; i++) {
                assertEquals(acp[i], myAcp[i], rtol * acp[i], "alphas_cumprod[" + i + "]");
                assertEquals(betas[i], myBetas[i], 1e-6 * betas[i], "betas[" + i + "]");
            }
        }
    }

    @Test
    void strengthKeepsTheTailOfTheSchedule() {
        Schedule full = DiffusersSchedule.euler(10, Spacing.LEADING, false);
        Schedule tail = full.strength(0.6);
        assertEquals(6, tail.timesteps().length);
        assertEquals(full.timesteps()[4], tail.timesteps()[0]);
        assertEquals(7, tail.sigmas().length);
        assertEquals(0.0, tail.sigmas()[6]);
    }
}
