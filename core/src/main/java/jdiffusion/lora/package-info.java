/**
 * LoRA files (kohya, diffusers/PEFT, LyCORIS LoHa and LoKr) matched onto a model's canonical weight names and applied
 * on the fly.
 *
 * <p>Typical use (the pipeline's {@code --lora FILE[:STRENGTH[:CLIP_STRENGTH]]}, repeatable):
 * <pre>{@code
 * ModelComponents base = new ModelComponents(unetWeights, te1Weights, te2WeightsOrNull);
 * try (LoraStack loras = LoraStack.load(base, List.of(LoraSpec.parse("style.safetensors:0.8")))) {
 *     loras.warnings().forEach(System.err::println);     // keys that matched nothing
 *     ModelComponents patched = loras.weights();          // build the UNet / text encoders from these
 * }
 * }</pre>
 * Lower level: {@link jdiffusion.lora.LoraFile#open} parses a file, {@link jdiffusion.lora.LoraMatch#of} matches it
 * to a model (family check, per-module shape check, report), {@link jdiffusion.lora.LoraWeights#apply} is the
 * {@link jdiffusion.io.Weights} decorator. {@link jdiffusion.lora.LoraInfo#describe} and
 * {@link jdiffusion.lora.LoraInfoPrinter} describe a file without a model ({@code jdiffusion info}).
 *
 * <p>The base weights are never written: every {@code get} returns base + strength x alpha / rank x delta in a fresh
 * array, so switching or removing LoRAs is building another stack over the same base.
 */
package jdiffusion.lora;
