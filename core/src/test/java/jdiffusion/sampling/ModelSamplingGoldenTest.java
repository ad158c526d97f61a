package jdiffusion.sampling;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import jdiffusion.Golden;
import jdiffusion.io.SafeTensors;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/** ModelSamplingDiscrete against golden samplers/model_sampling (every table in the manifest; exact float32). */
class ModelSamplingGoldenTest {

    private static ModelSamplingDiscrete forTable(JsonNode table) {
        return table.get("zsnr").asBoolean() ? ModelSamplingDiscrete.zeroTerminalSnr() : ModelSamplingDiscrete.DEFAULT;
    }

    @TestFactory
    List<DynamicTest> tables() throws Exception {
        Path manifest = Golden.dir().resolve("samplers/model_sampling.json");
        JsonNode tables = Golden.json(manifest).get("tables");
        List<DynamicTest> tests = new ArrayList<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = tables.fields(); it.hasNext();) {
            Map.Entry<String, JsonNode> e = it.next();
            String name = e.getKey();
            JsonNode table = e.getValue();
            tests.add(DynamicTest.dynamicTest(name, () -> checkTable(manifest, name, table)));
        }
        return tests;
    }

    /** The half-integer tie of the README's pitfall: sigma(499.5) computed in float32 maps to timestep 500. */
    @org.junit.jupiter.api.Test
    void halfIntegerTieMapsToTimestep500() {
        ModelSamplingDiscrete ms = ModelSamplingDiscrete.DEFAULT;
        assertEquals(1.6155803203582764, ms.sigma(499.5), 0.0);
        assertEquals(500, ms.timestep(ms.sigma(499.5)));
    }

    private static void checkTable(Path manifest, String name, JsonNode table) throws Exception {
        ModelSamplingDiscrete ms = forTable(table);
        try (SafeTensors st = Golden.tensors(manifest)) {
            float[] sigmas = st.floats(name + ".sigmas");
            float[] logSigmas = st.floats(name + ".log_sigmas");
            for (int t = 0; t < sigmas.length; t++) {
                assertEquals(sigmas[t], ms.sigmaAt(t), 0f, name + " sigmas[" + t + "]");
                assertEquals(logSigmas[t], ms.logSigmaAt(t), 0f, name + " log_sigmas[" + t + "]");
            }
            float[] ts = st.floats(name + ".sigma_of_timestep.t");
            float[] sigmaOfT = st.floats(name + ".sigma_of_timestep.sigma");
            for (int i = 0; i < ts.length; i++) {
                // torch's float32 exp may round a near-tie the other way: one ulp of slack.
                assertEquals(sigmaOfT[i], ms.sigma(ts[i]), Math.ulp(sigmaOfT[i]), name + " sigma(" + ts[i] + ")");
            }
            float[] sigmaIn = st.floats(name + ".timestep_of_sigma.sigma");
            long[] timestep = st.longs(name + ".timestep_of_sigma.t");
            for (int i = 0; i < sigmaIn.length; i++) {
                assertEquals(timestep[i], ms.timestep(sigmaIn[i]), name + " timestep(" + sigmaIn[i] + ")");
            }
        }
        for (JsonNode p : table.get("percent_to_sigma")) {
            double percent = p.get("percent").asDouble();
            double want = p.get("sigma").asDouble();
            assertEquals(want, ms.percentToSigma(percent), Math.ulp((float) want), name + " percent_to_sigma(" + percent + ")");
        }
        assertEquals(table.get("sigma_min").asDouble(), ms.sigmaMin(), 0.0, name + " sigma_min");
        assertEquals(table.get("sigma_max").asDouble(), ms.sigmaMax(), 0.0, name + " sigma_max");
    }
}
