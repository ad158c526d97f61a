package jdiffusion.sampling;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import jdiffusion.Golden;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * Every scheduler x step count and every KSampler.set_steps case of golden samplers/schedulers.json. Sigmas must
 * equal ComfyUI's float32 values to within one float32 ulp (libm tan / pow may round the last bit differently).
 */
class SchedulerGoldenTest {

    private static final Path MANIFEST = Golden.dir().resolve("samplers/schedulers.json");

    private static ModelSamplingDiscrete forTable(String table) {
        return table.endsWith("_zsnr") ? ModelSamplingDiscrete.zeroTerminalSnr() : ModelSamplingDiscrete.DEFAULT;
    }

    static void assertSigmas(String what, JsonNode expected, double[] actual) {
        assertEquals(expected.size(), actual.length, what + ": number of sigmas");
        for (int i = 0; i < actual.length; i++) {
            JsonNode e = expected.get(i);
            if (e.isNull()) {
                assertTrue(Double.isNaN(actual[i]) || Double.isInfinite(actual[i]), what + "[" + i + "]: expected NaN, got " + actual[i]);
                continue;
            }
            double want = e.asDouble();
            double ulp = Math.ulp((float) want);
            assertEquals(want, actual[i], ulp, what + "[" + i + "]");
        }
    }

    @TestFactory
    List<DynamicTest> schedulers() {
        JsonNode root = Golden.json(MANIFEST);
        List<DynamicTest> tests = new ArrayList<>();
        for (Iterator<Map.Entry<String, JsonNode>> t = root.get("model_sampling").fields(); t.hasNext();) {
            Map.Entry<String, JsonNode> table = t.next();
            ModelSamplingDiscrete ms = forTable(table.getKey());
            for (Iterator<Map.Entry<String, JsonNode>> s = table.getValue().fields(); s.hasNext();) {
                Map.Entry<String, JsonNode> sched = s.next();
                for (Iterator<Map.Entry<String, JsonNode>> n = sched.getValue().fields(); n.hasNext();) {
                    Map.Entry<String, JsonNode> steps = n.next();
                    String what = table.getKey() + "." + sched.getKey() + "." + steps.getKey();
                    tests.add(DynamicTest.dynamicTest(what, () -> assertSigmas(what, steps.getValue(),
                            Schedulers.sigmas(sched.getKey(), ms, Integer.parseInt(steps.getKey())))));
                }
            }
        }
        return tests;
    }

    @TestFactory
    List<DynamicTest> ksamplerSetSteps() {
        JsonNode root = Golden.json(MANIFEST);
        List<DynamicTest> tests = new ArrayList<>();
        for (Iterator<Map.Entry<String, JsonNode>> t = root.get("ksampler_set_steps").fields(); t.hasNext();) {
            Map.Entry<String, JsonNode> table = t.next();
            ModelSamplingDiscrete ms = forTable(table.getKey());
            for (Iterator<Map.Entry<String, JsonNode>> c = table.getValue().fields(); c.hasNext();) {
                Map.Entry<String, JsonNode> kase = c.next();
                // key: scheduler|sampler|stepsN|denoiseD
                String[] parts = kase.getKey().split("\\|");
                int steps = Integer.parseInt(parts[2].substring("steps".length()));
                double denoise = Double.parseDouble(parts[3].substring("denoise".length()));
                String what = table.getKey() + " " + kase.getKey();
                tests.add(DynamicTest.dynamicTest(what, () -> assertSigmas(what, kase.getValue(),
                        KSampler.sigmas(ms, parts[0], parts[1], steps, denoise))));
            }
        }
        return tests;
    }

    @Test
    void unknownSchedulerListsValidNames() {
        IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> Schedulers.get("fancy"));
        assertTrue(e.getMessage().contains("unknown scheduler 'fancy'"), e.getMessage());
        for (String name : Schedulers.NAMES) {
            assertTrue(e.getMessage().contains(name), e.getMessage());
        }
    }

    @Test
    void betaQuantileInvertsTheDistributionFunction() {
        // Beta(1, 1) is uniform; Beta(2, 1) has CDF x^2; Beta(0.5, 0.5) has CDF (2/pi) asin(sqrt x).
        assertEquals(0.3, BetaDistribution.quantile(0.3, 1, 1), 1e-15);
        assertEquals(Math.sqrt(0.49), BetaDistribution.quantile(0.49, 2, 1), 1e-14);
        double x = BetaDistribution.quantile(0.25, 0.5, 0.5);
        assertEquals(0.25, 2 / Math.PI * Math.asin(Math.sqrt(x)), 1e-14);
    }
}
