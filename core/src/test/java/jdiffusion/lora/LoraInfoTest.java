package jdiffusion.lora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.SafeTensors;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/** LoraInfo of the golden LoRAs: format, family (that of the checkpoint the manifest pairs it with), rank, alpha, modules. */
class LoraInfoTest {
    @TestFactory
    Stream<DynamicTest> describesTheGoldenLoras() {
        return Golden.manifests("pipe_").stream()
                .filter(m -> GoldenModels.manifest(m).path("params").has("lora"))
                .map(m -> DynamicTest.dynamicTest(Golden.caseName(m), () -> check(GoldenModels.manifest(m).get("params"))));
    }

    private void check(JsonNode params) throws Exception {
        Path loraPath = Golden.dir().resolve(params.get("lora").get("file").asText());
        try (SafeTensors lora = SafeTensors.open(loraPath); SafeTensors ckpt = SafeTensors.open(GoldenModels.checkpoint(params))) {
            LoraInfo info = LoraInfo.describe(lora);
            Family modelFamily = GoldenModels.components(ckpt).family();
            assertTrue(info.family().compatibleWith(modelFamily) && info.family() != Family.UNKNOWN,
                    info.family() + " for a " + modelFamily + " model");
            assertEquals("kohya LoRA", info.format());
            // independent counts: kohya module prefixes, ranks from lora_down, alphas from the .alpha tensors
            Map<Component, Integer> modules = new TreeMap<>();
            TreeSet<Integer> ranks = new TreeSet<>();
            TreeSet<Float> alphas = new TreeSet<>();
            for (String k : lora.names()) {
                if (k.endsWith(".lora_down.weight")) {
                    Component c = k.startsWith("lora_unet_") ? Component.UNET : k.startsWith("lora_te2_") ? Component.TE2 : Component.TE1;
                    modules.merge(c, 1, Integer::sum);
                    ranks.add(lora.info(k).dims()[0]);
                } else if (k.endsWith(".alpha")) {
                    alphas.add(lora.floats(k)[0]);
                }
            }
            assertEquals(modules, new TreeMap<>(info.modules()));
            assertEquals(ranks, info.ranks());
            assertEquals(alphas, info.alphas());
            assertEquals(lora.names().size(), info.keys());
            String text = LoraInfoPrinter.format(info);
            assertTrue(text.contains("kohya LoRA") && text.contains(info.family().label())
                    && text.contains("modules: " + info.moduleCount()), text);
        }
    }
}
