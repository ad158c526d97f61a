package jdiffusion.sampling;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.SafeTensors;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * Rectified-flow schedules of SD3 / SD3.5: diffusers' FlowMatchEulerDiscreteScheduler ({@code schedules_sd35*}: the
 * training table and set_timesteps for every shift x steps) and ComfyUI's ModelSamplingDiscreteFlow with every
 * scheduler ({@code schedules_comfy_sd3*}); float32 values within the manifest's rtol (at least one ulp).
 */
class FlowScheduleGoldenTest {

    @TestFactory
    Stream<DynamicTest> diffusersFlowMatchSchedules() {
        return Golden.manifestsIn("sd35", "schedules_sd35").stream().flatMap(m -> subCases(m, (key, expected) -> {
            // <shiftS>.train_sigmas | <shiftS>.n<N>.timesteps | <shiftS>.n<N>.sigmas
            String[] parts = key.split("\\.", 2);
            double shift = Double.parseDouble(parts[0].substring("shift".length()));
            if (parts[1].equals("train_sigmas")) {
                return FlowMatchEulerScheduler.trainSigmas(shift);
            }
            String[] rest = parts[1].split("\\.");
            FlowMatchEulerScheduler.Schedule s = FlowMatchEulerScheduler.schedule(
                    Integer.parseInt(rest[0].substring(1)), shift);
            return rest[1].equals("timesteps") ? s.timesteps() : s.sigmas();
        }));
    }

    @TestFactory
    Stream<DynamicTest> comfyFlowSchedules() {
        return Golden.manifestsIn("sd35", "schedules_comfy_sd3").stream().flatMap(m -> {
            ModelSamplingDiscrete ms = ModelSamplingDiscrete.flow(Golden.json(m).get("params").get("shift")
                    .asDouble());
            return subCases(m, (key, expected) -> {
                if (key.equals("model_sampling_sigmas")) {
                    float[] t = new float[ModelSamplingDiscrete.TIMESTEPS];
                    for (int i = 0; i < t.length; i++) {
                        t[i] = ms.sigmaAt(i);
                    }
                    return t;
                }
                String[] parts = key.split("\\.n");
                double[] d = Schedulers.sigmas(parts[0], ms, Integer.parseInt(parts[1]));
                float[] f = new float[d.length];
                for (int i = 0; i < d.length; i++) {
                    f[i] = (float) d[i];
                }
                return f;
            });
        });
    }

    interface Compute {
        float[] of(String key, float[] expected);
    }

    private static Stream<DynamicTest> subCases(Path manifest, Compute compute) {
        JsonNode json = Golden.json(manifest);
        double rtol = json.path("tolerance").path("rtol").asDouble(1e-6);
        List<DynamicTest> tests = new ArrayList<>();
        for (Map.Entry<String, JsonNode> out : json.get("outputs").properties()) {
            String what = Golden.caseName(manifest) + " " + out.getKey();
            tests.add(DynamicTest.dynamicTest(what, () -> {
                try (SafeTensors st = Golden.tensors(manifest)) {
                    float[] expected = st.floats(out.getValue().get("tensor").asText());
                    float[] actual = compute.of(out.getKey(), expected);
                    assertEquals(expected.length, actual.length, what + ": length");
                    for (int i = 0; i < expected.length; i++) {
                        double tol = Math.max(rtol * Math.abs(expected[i]), Math.ulp(expected[i]));
                        if (Float.isNaN(expected[i])) {
                            assertTrue(Float.isNaN(actual[i]), what + "[" + i + "]: expected NaN");
                            continue;
                        }
                        assertEquals(expected[i], actual[i], tol, what + "[" + i + "]");
                    }
                }
            }));
        }
        assertTrue(tests.size() > 1, Golden.caseName(manifest) + " lists its sub-cases");
        return tests.stream();
    }
}
