package jdiffusion.cli;

import java.io.PrintStream;
import java.util.Optional;
import jdiffusion.pipeline.GenerateRequest;
import jdiffusion.pipeline.PredictionHint;
import jdiffusion.pipeline.Presets;

/**
 * {@code generate --preset} and the prediction notice: fills a preset's choices into the request and tells the user,
 * one line each, what the preset and the file names chose (before the long part starts).
 */
final class PresetOption {
    private PresetOption() {
    }

    /** preset: null for none. Prints "preset ...: ..." and, when the files decide it, "prediction: x0 (...)". */
    static GenerateRequest apply(GenerateRequest request, String preset, PrintStream err) {
        GenerateRequest r = request;
        if (preset != null) {
            Presets.Applied applied;
            try {
                applied = Presets.apply(Presets.Preset.parse(preset), request);
            } catch (IllegalArgumentException e) {
                throw new CliException(e.getMessage());
            }
            r = applied.request();
            err.println(applied.summary());
        }
        if (r.prediction() == GenerateRequest.Prediction.AUTO) {
            Optional<PredictionHint> hint = PredictionHint.ofFiles(r.model(), r.unet());
            hint.ifPresent(h -> err.println("prediction: " + h.describe()));
        }
        return r;
    }
}
