// The free-port helpers live with the bench, which needs them too.
export { freeTcpPort, freeUdpPort } from '../../bench/ports.js';
