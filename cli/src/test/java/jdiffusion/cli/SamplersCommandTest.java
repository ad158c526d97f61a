package jdiffusion.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import jdiffusion.sampling.Samplers;
import jdiffusion.sampling.Schedulers;
import org.junit.jupiter.api.Test;

/** {@code jdiffusion samplers} lists every ComfyUI sampler and scheduler name. */
class SamplersCommandTest {

    @Test
    void listsEverySamplerAndScheduler() {
        CliTests.Result r = CliTests.run("samplers");
        assertEquals(0, r.code());
        List<String> lines = r.out().lines().map(String::strip).toList();
        for (String name : Samplers.NAMES) {
            assertTrue(lines.stream().anyMatch(l -> l.equals(name) || l.startsWith(name + " ")), name);
        }
        for (String name : Schedulers.NAMES) {
            assertTrue(lines.contains(name), name);
        }
        assertTrue(lines.contains("euler_ancestral"), "euler_ancestral is implemented");
        assertTrue(lines.contains("karras") && lines.contains("kl_optimal") && lines.contains("trailing"));
    }
}
