package jdiffusion.pipeline;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import java.util.function.UnaryOperator;
import jdiffusion.Golden;
import org.junit.jupiter.api.Test;

/** --unet, --vae and LoRAs with an SD3 checkpoint are refused in one line naming the flag and its file. */
class Sd3UnsupportedFlagsTest {
    private static final Path SD35 = Golden.model("tiny-sd35-fp16.safetensors");
    private static final Path SD1 = Golden.model("tiny-sd1-fp16.safetensors");
    private static final Path LORA = Golden.model("tiny-sd1-lora-kohya.safetensors");

    private static String refusal(UnaryOperator<GenerateRequest.Builder> flag) {
        GenerateRequest r = flag.apply(GenerateRequest.builder(SD35).prompt("x").size(64, 64).steps(1)).build();
        GenerateException e = assertThrows(GenerateException.class, () -> Sd3Models.load(r).close());
        assertTrue(!e.getMessage().contains("\n") && e.getMessage().contains("SD3"), e.getMessage());
        return e.getMessage();
    }

    @Test
    void eachIsNamedWithItsFile() {
        String lora = refusal(b -> b.loras(List.of(new GenerateRequest.LoraSpec(LORA, 1.0))));
        assertTrue(lora.startsWith("LoRA tiny-sd1-lora-kohya.safetensors: not supported"), lora);
        String unet = refusal(b -> b.unet(SD35));
        assertTrue(unet.startsWith("--unet tiny-sd35-fp16.safetensors: not supported"), unet);
        String vae = refusal(b -> b.vae(SD1));
        assertTrue(vae.startsWith("--vae tiny-sd1-fp16.safetensors: not supported"), vae);
    }
}
