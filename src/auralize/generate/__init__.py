"""Networks that make sound: boii/GRUV block features, LSTM models, training,
streaming generation and live playing through up to three models."""
