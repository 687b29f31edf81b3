"""Evaluation metrics for unmasking: distribution distances (Fréchet, KID), pixel fidelity
(PSNR, SSIM, L1, whole image and mask region), identity (dlib face embeddings) and the
face-detection rate. Each module is NumPy/TensorFlow in, plain numbers out, free of CLIs."""
