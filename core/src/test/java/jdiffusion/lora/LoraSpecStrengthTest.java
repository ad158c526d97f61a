package jdiffusion.lora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** Issue 16 items 6 and 8: a bad strength says what is wrong with the strength, not "LoRA file not found". */
class LoraSpecStrengthTest {
    private static void fails(String arg, String expected) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LoraSpec.parse(arg), arg);
        assertTrue(e.getMessage().contains(expected), arg + " -> " + e.getMessage());
        assertTrue(!e.getMessage().contains("not found"), e.getMessage());
    }

    @Test
    void strengthSyntaxErrors() {
        fails("style.safetensors:abc", "strength 'abc' is not a number");
        fails("style.safetensors:NaN", "strength 'NaN' is not a finite number");
        fails("style.safetensors:inf", "not a");
        fails("style.safetensors:1:2:3", "3 strengths given; at most two");
        fails("style.safetensors:", "empty strength");
        fails("style.safetensors:0.5:", "empty CLIP strength");
        fails("style.safetensors:1e30", "out of range (-100..100)");
        fails("style.safetensors:0.5:1e400", "CLIP strength '1e400' is not a finite number");
        fails("style:", "empty strength");
    }

    @Test
    void goodStrengths() {
        assertEquals(new LoraSpec(Path.of("style.safetensors"), 1f, 1f), LoraSpec.parse("style.safetensors"));
        assertEquals(new LoraSpec(Path.of("style.safetensors"), 0.8f, 0.8f), LoraSpec.parse("style.safetensors:0.8"));
        assertEquals(new LoraSpec(Path.of("style.safetensors"), -1f, 0.25f),
                LoraSpec.parse("style.safetensors:-1:0.25"));
        assertEquals(new LoraSpec(Path.of("a/b:c.safetensors"), 0.5f, 0.5f), LoraSpec.parse("a/b:c.safetensors:0.5"));
        assertEquals(new LoraSpec(Path.of("style"), 0.5f, 0.5f), LoraSpec.parse("style:0.5"));
        assertEquals(new LoraSpec(Path.of("my:style"), 1f, 1f), LoraSpec.parse("my:style"));
    }
}
