"""What comes out of training and what is done with it: trained models, exports, predictions, evaluations."""
