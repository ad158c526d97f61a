package jdiffusion.model;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.Checkpoint;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * The inpainting UNet cases ({@code unet_*} in the golden inpaint folder whose config has more than 4 input
 * channels): one forward with the latent, mask and masked-image latent channels, on the fp16 file and its fp32 twin;
 * the in-channels come from conv_in's weight shape, and the checkpoint's detection reports them.
 */
class InpaintUNetGoldenTest {

    private static List<Path> cases() {
        return Golden.manifestsIn("inpaint", "unet_").stream()
                .filter(m -> Golden.json(m).path("params").path("config").path("in_channels").asInt(4) > 4)
                .toList();
    }

    @TestFactory
    Stream<DynamicTest> everyInpaintUnetCase(@TempDir Path tmp) {
        return cases().stream().flatMap(m -> Stream.of(
                DynamicTest.dynamicTest(Golden.caseName(m) + " [fp16]", () -> UNetGoldenTest.runCase(m,
                        Golden.fp16Model(Golden.json(m).get("params").get("config")))),
                DynamicTest.dynamicTest(Golden.caseName(m) + " [fp32]", () -> UNetGoldenTest.runCase(m,
                        Golden.fp32Twin(Golden.fp16Model(Golden.json(m).get("params").get("config")), tmp)))));
    }

    @TestFactory
    Stream<DynamicTest> inChannelsReadFromConvIn() {
        return cases().stream().map(m -> DynamicTest.dynamicTest(Golden.caseName(m), () -> {
            int expected = Golden.json(m).path("params").path("config").path("in_channels").asInt();
            Path file = Golden.fp16Model(Golden.json(m).get("params").get("config"));
            try (SafeTensors f = SafeTensors.open(file)) {
                assertEquals(expected, UNetConfig.infer(Weights.prefixed(f, "model.diffusion_model.")).inChannels());
            }
            try (Checkpoint c = Checkpoint.open(file)) {
                assertEquals(expected, c.config().unet().inChannels());
            }
        }));
    }
}
